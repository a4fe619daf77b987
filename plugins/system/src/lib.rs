//! The bundled system monitors in one library: cpu, memory, disk, network, filesystem and
//! os, exported with `export_plugins!` (plugin API 1.1). hbc runs each as if it came from
//! its own file; the library carries one copy of std instead of six (issue 20: about
//! 0.55 MB resident per library saved).

hbc_plugin_api::export_plugins!(
    hbc_cpu::CpuPlugin,
    hbc_memory::MemoryPlugin,
    hbc_disk::DiskPlugin,
    hbc_network::NetworkPlugin,
    hbc_filesystem::FilesystemPlugin,
    hbc_os::OsPlugin,
);
