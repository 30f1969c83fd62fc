//! CUDA, probed through the driver API loaded at run time, so one host binary serves every
//! backend and needs no CUDA toolkit to build.

use super::DeviceError;
use libloading::{Library, Symbol};
use std::ffi::{CStr, c_char, c_int, c_uint};

type CuResult = c_int;

/// Initialises the driver and names device `ordinal`: `cuda:N (<name>)`.
pub fn probe(ordinal: u32) -> Result<String, DeviceError> {
    let library = ["libcuda.so.1", "libcuda.so", "nvcuda.dll"]
        .iter()
        // SAFETY: loading the NVIDIA driver library runs its initialisers; it is the system's
        // own driver (found by its fixed name), which every CUDA program loads the same way.
        .find_map(|name| unsafe { Library::new(name) }.ok())
        .ok_or(DeviceError::NoCudaDriver)?;
    // SAFETY: each symbol is looked up with the signature the CUDA driver API declares for it
    // (cuda.h: `CUresult cuInit(unsigned int)`, `cuDeviceGetCount(int*)`,
    // `cuDeviceGet(CUdevice*, int)`, `cuDeviceGetName(char*, int, CUdevice)`, with `CUresult`
    // and `CUdevice` being `int`), and `library` outlives every call. The out-pointers point to
    // live locals, the name buffer's length is passed with it, and the driver NUL-terminates
    // the name within that length, so `CStr::from_ptr` reads inside the buffer.
    unsafe {
        let init: Symbol<unsafe extern "C" fn(c_uint) -> CuResult> = symbol(&library, b"cuInit\0")?;
        let count: Symbol<unsafe extern "C" fn(*mut c_int) -> CuResult> =
            symbol(&library, b"cuDeviceGetCount\0")?;
        let get: Symbol<unsafe extern "C" fn(*mut c_int, c_int) -> CuResult> =
            symbol(&library, b"cuDeviceGet\0")?;
        let name: Symbol<unsafe extern "C" fn(*mut c_char, c_int, c_int) -> CuResult> =
            symbol(&library, b"cuDeviceGetName\0")?;
        check(init(0), "cuInit")?;
        let mut devices = 0;
        check(count(&mut devices), "cuDeviceGetCount")?;
        if ordinal as c_int >= devices {
            return Err(DeviceError::NoSuchCudaDevice { ordinal, devices });
        }
        let mut handle = 0;
        check(get(&mut handle, ordinal as c_int), "cuDeviceGet")?;
        let mut buffer = [0 as c_char; 256];
        check(
            name(buffer.as_mut_ptr(), buffer.len() as c_int, handle),
            "cuDeviceGetName",
        )?;
        let device_name = CStr::from_ptr(buffer.as_ptr()).to_string_lossy();
        Ok(format!("cuda:{ordinal} ({device_name})"))
    }
}

/// Looks up a driver function.
///
/// # Safety
///
/// `T` must be the function's real signature.
unsafe fn symbol<'l, T>(library: &'l Library, name: &[u8]) -> Result<Symbol<'l, T>, DeviceError> {
    // SAFETY: the caller guarantees that `T` is the symbol's type.
    unsafe { library.get(name) }.map_err(|error| DeviceError::CudaSymbol {
        name: String::from_utf8_lossy(name).into_owned(),
        error,
    })
}

fn check(code: CuResult, call: &'static str) -> Result<(), DeviceError> {
    match code {
        0 => Ok(()),
        code => Err(DeviceError::CudaCall { call, code }),
    }
}
