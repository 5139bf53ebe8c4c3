# A marker, not the build. The addon is built by cmake-js from
# native/CMakeLists.txt (libtorch is found through find_package(Torch), which
# gyp cannot do). This file only tells Electron tooling (electron-rebuild,
# electron-builder) that the package is native; their `node-gyp rebuild`
# builds this empty target, and the Node-API binary needs no rebuild for
# Electron. npm runs our install script instead of node-gyp, because
# package.json defines "install".
{
  "targets": [
    {
      "target_name": "torch_guidance_marker",
      "type": "none"
    }
  ]
}
