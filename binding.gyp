{
  "targets": [
    {
      "target_name": "hotmeter",
      "sources": [
        "native/addon.cc",
        "native/binding/prometheus_js.cc",
        "native/binding/record_map_js.cc",
        "native/core/aggregator.cc",
        "native/core/exponential_histogram.cc",
        "native/core/block_pool.cc",
        "native/core/output_pool.cc",
        "native/core/label_set.cc",
        "native/core/prometheus_naming.cc",
        "native/core/prometheus_output.cc",
        "native/core/prometheus_plan.cc",
        "native/core/prometheus_snapshot.cc",
        "native/core/prometheus_stream.cc",
        "native/core/prometheus_writer.cc",
        "native/core/prometheus_protobuf.cc",
        "native/core/record.cc",
        "native/core/record_map.cc",
        "native/core/push_lease.cc",
        "native/core/shared_segment.cc",
        "native/core/sketch.cc",
        "native/core/slab_arena.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      # NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS: a worker terminated during a native call
      # cannot take a JS exception; without it node-addon-api rethrows and aborts the process.
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED",
                  "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++20", "-fexceptions", "-Wall", "-Wextra"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++20",
        "MACOSX_DEPLOYMENT_TARGET": "11.0"
      },
      "msvs_settings": {
        "VCCLCompilerTool": { "ExceptionHandling": 1, "AdditionalOptions": ["/std:c++20"] }
      },
      "conditions": [
        ["OS=='linux' and '<!(echo $HOTMETER_SANITIZE)'!='1' and '<!(echo $HOTMETER_PORTABLE)'!='1'", {
          "ldflags": ["-static-libstdc++", "-static-libgcc"]
        }],
        # The Linux prebuilds (scripts/prebuild-linux.sh: a Debian 11 --sysroot in CC/CXX).
        # libgcc stays shared: the static libgcc_eh of GCC >= 12 needs glibc 2.35
        # (_dl_find_object), and node itself loads libgcc_s.so.1. native/compat supplies
        # what the static libstdc++ needs beyond glibc 2.28.
        ["OS=='linux' and '<!(echo $HOTMETER_PORTABLE)'=='1'", {
          "sources": ["native/compat/glibc_compat.cc"],
          "ldflags": ["-static-libstdc++", "-Wl,--wrap=exp", "-Wl,--wrap=log"]
        }],
        ["OS=='linux' and '<!(echo $HOTMETER_SANITIZE)'=='1'", {
          "cflags_cc": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g"],
          "ldflags": ["-fsanitize=address,undefined"]
        }]
      ]
    }
  ]
}
