export declare const PREBUILD_NAME: string;
export declare function buildInfoPath(binary: string): string;
export declare function candidatePaths(root: string, explicitPath?: string): string[];
export interface BuildInfo {
  torchVersion: string;
  torchSource: string;
  torchLibDir: string;
  cuda: boolean;
  cxx11Abi: number;
  napiVersion: number;
  platform: string;
  arch: string;
  buildType: string;
  builtAt: string;
}
export declare function loadBinary(
  root: string,
  explicitPath?: string,
): { binding: unknown; path: string; buildInfo: BuildInfo };
