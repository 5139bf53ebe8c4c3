// CRC-32 (the zip and PNG polynomial, 0xEDB88320 reflected), for checking an
// archive's records against the checksums its directory declares: libtorch's
// zip reader is built without that check, so a damaged byte would load as a
// changed weight.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tg {

// Continues `crc` (0 to start) over `size` bytes.
uint32_t Crc32(uint32_t crc, const uint8_t* data, size_t size);

}  // namespace tg
