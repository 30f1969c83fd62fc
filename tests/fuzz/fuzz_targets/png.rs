//! The PNG image (and mask) of `/v1/images/edits`, decoded as the host does to find the
//! transparent area. The input is the image's length (two bytes, little-endian), the image,
//! then the mask if any bytes are left.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rbee_host::server::untrusted;

fuzz_target!(|data: &[u8]| {
    let Some((length, data)) = data.split_first_chunk::<2>() else {
        return;
    };
    let (image, mask) = data.split_at(data.len().min(u16::from_le_bytes(*length) as usize));
    let _ = untrusted::plan_edit(image, (!mask.is_empty()).then_some(mask));
});
