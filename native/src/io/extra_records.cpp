#include "io/extra_records.h"

#include "io/zip_directory.h"

namespace tg {

std::vector<std::string> ExtraRecordNames(const ArchiveFile& file, const std::string& folder) {
  std::vector<std::string> names;
  for (const ZipRecord& record : ReadZipDirectory(file)) {
    // "<archive root>/extra/<folder><name>": the root is the first segment.
    size_t slash = record.name.find('/');
    if (slash == std::string::npos) continue;
    const std::string rest = record.name.substr(slash + 1);
    const std::string prefix = "extra/" + folder;
    if (rest.size() > prefix.size() && rest.rfind(prefix, 0) == 0) names.push_back(rest.substr(6));
  }
  return names;
}

}  // namespace tg
