// Finds and loads the torch-guidance native binary. Plain JavaScript so the
// install script can use it before TypeScript is compiled; src/native/
// binding.ts uses it at run time.
//
// Candidates, in order: TORCH_GUIDANCE_BINARY alone when set; else a local
// build (build/Release, build/Debug), then the prebuild for this platform
// (prebuilds/<platform>-<arch>/torch-guidance.node). Each binary has a
// JSON of build facts beside it (written by native/CMakeLists.txt); a binary
// is used only when those facts fit this process and, once loaded, the
// libtorch the dynamic loader resolved is the one it was built against.
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { arch, platform } from 'node:os';
import { basename, dirname, join } from 'node:path';

const require = createRequire(import.meta.url);

// prebuildify's name for a Node-API build: the package name, no ABI tag.
export const PREBUILD_NAME = 'torch-guidance.node';

/** The build-facts JSON that belongs to a binary. */
export function buildInfoPath(binary) {
  return basename(binary) === PREBUILD_NAME ? binary.replace(/\.node$/, '.json') : join(dirname(binary), 'torch_guidance.json');
}

export function candidatePaths(root, explicitPath) {
  if (explicitPath) return [explicitPath];
  return [
    join(root, 'build', 'Release', 'torch_guidance.node'),
    join(root, 'build', 'Debug', 'torch_guidance.node'),
    join(root, 'prebuilds', `${platform()}-${arch()}`, PREBUILD_NAME),
  ];
}

function sameDir(a, b) {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

const PLATFORMS = { Linux: 'linux', Darwin: 'darwin', Windows: 'win32' };
const ARCHES = { x86_64: 'x64', AMD64: 'x64', aarch64: 'arm64', arm64: 'arm64' };

/** Why `info` does not fit this process, or undefined when it does. */
function misfit(info) {
  if (Number(info.napiVersion) > Number(process.versions.napi)) {
    return `needs Node-API ${info.napiVersion}, this Node has ${process.versions.napi}`;
  }
  if (PLATFORMS[info.platform] && PLATFORMS[info.platform] !== platform()) return `built for ${info.platform}`;
  if (ARCHES[info.arch] && ARCHES[info.arch] !== arch()) return `built for ${info.arch}`;
  if (info.torchLibDir && !existsSync(info.torchLibDir)) {
    return `built against libtorch in ${info.torchLibDir}, which no longer exists`;
  }
  return undefined;
}

/**
 * Loads the first usable binary. Returns { binding, path, buildInfo } or
 * throws an Error whose `tried` lists each candidate and why it was skipped.
 */
export function loadBinary(root, explicitPath) {
  const tried = [];
  for (const path of candidatePaths(root, explicitPath)) {
    if (!existsSync(path)) {
      tried.push(`${path}: not there`);
      continue;
    }
    let buildInfo;
    try {
      buildInfo = JSON.parse(readFileSync(buildInfoPath(path), 'utf8'));
    } catch (error) {
      tried.push(`${path}: no readable ${basename(buildInfoPath(path))} beside it (${error.code ?? error.message})`);
      continue;
    }
    const reason = misfit(buildInfo);
    if (reason) {
      tried.push(`${path}: ${reason}`);
      continue;
    }
    let binding;
    try {
      binding = require(path);
    } catch (error) {
      tried.push(`${path}: failed to load (${String(error.message).split('\n')[0]})`);
      continue;
    }
    const loaded = binding.runtimeInfo().libtorchPath;
    if (buildInfo.torchLibDir && loaded && !sameDir(dirname(loaded), buildInfo.torchLibDir)) {
      tried.push(`${path}: built against libtorch in ${buildInfo.torchLibDir}, but the process loaded ${loaded}`);
      continue;
    }
    return { binding, path, buildInfo };
  }
  const error = new Error(
    `no usable torch-guidance native binary. Tried:\n  - ${tried.join('\n  - ')}\n` +
      'Fix: run `npm run build:native` in the package folder (needs libtorch: `apt-get install libtorch-dev`, ' +
      'a pip torch, or TORCH_GUIDANCE_LIBTORCH=/path/to/libtorch).',
  );
  error.tried = tried;
  throw error;
}
