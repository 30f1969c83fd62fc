//! Metal exists only on Apple platforms; elsewhere asking for it is a clear error.

use super::DeviceError;

/// Checks that the Metal framework loads and can create a device: `metal:N`.
#[cfg(target_os = "macos")]
pub fn probe(ordinal: u32) -> Result<String, DeviceError> {
    const FRAMEWORK: &str = "/System/Library/Frameworks/Metal.framework/Metal";
    // SAFETY: the system's own Metal framework, at its fixed path, whose initialisers every
    // Metal program runs.
    let library =
        unsafe { libloading::Library::new(FRAMEWORK) }.map_err(DeviceError::MetalUnavailable)?;
    // SAFETY: the signature is the one Metal declares (`id<MTLDevice>
    // MTLCreateSystemDefaultDevice(void)`, an object pointer); the symbol is only looked up,
    // never called, and dropped before `library`.
    let _create: libloading::Symbol<unsafe extern "C" fn() -> *mut std::ffi::c_void> =
        unsafe { library.get(b"MTLCreateSystemDefaultDevice\0") }
            .map_err(DeviceError::MetalUnusable)?;
    Ok(format!("metal:{ordinal}"))
}

/// Refuses Metal: this platform has none.
#[cfg(not(target_os = "macos"))]
pub fn probe(ordinal: u32) -> Result<String, DeviceError> {
    Err(DeviceError::NoMetal { ordinal })
}
