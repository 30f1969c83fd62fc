//! OpenAI's edit semantics, turned into the native image tasks' input contract.
//!
//! OpenAI marks the area to repaint with fully transparent pixels (alpha 0): those of `mask`
//! when one is given, else those of `image` itself. The native `inpainting` task takes an
//! `init_image` and a `mask_image` in which white means repaint and black means keep, and
//! `image-to-image` takes just an `init_image`. Only those task and parameter names are
//! involved, never a model, so any plugin serving the tasks serves the route.

use super::super::request;
use crate::server::ApiError;
use rbee_plugin_api::tasks::image;

/// The task a request becomes; `mask_png` (white = repaint) when it is `inpainting`.
#[derive(Debug, PartialEq)]
pub struct Edit {
    /// `inpainting` or `image-to-image`.
    pub task: &'static str,
    /// The native mask as a grayscale PNG, for `inpainting`.
    pub mask_png: Option<Vec<u8>>,
}

/// The most pixels an upload may have (4096 x 4096). The buffer it decodes into is sized from
/// its header alone, and a PNG of a few bytes can claim petabytes: allocating them aborted the
/// host (found by the `multipart` fuzz target).
const MAX_PIXELS: u64 = 4096 * 4096;

/// A decoded PNG reduced to what the semantics need.
struct Transparency {
    width: u32,
    height: u32,
    /// One flag per pixel, row by row, for images with an alpha channel (or a tRNS chunk).
    transparent: Option<Vec<bool>>,
}

/// Maps an upload (and its optional mask) onto a native task: the transparent pixels of the
/// mask, or of the image when no mask is given, are repainted; an image with no transparent
/// pixel and no mask becomes `image-to-image`.
pub fn plan(image: &[u8], mask: Option<&[u8]>) -> Result<Edit, ApiError> {
    let image = decode("image", image)?;
    let Some(mask) = mask else {
        return Ok(match image.transparent {
            Some(flags) if flags.contains(&true) => Edit {
                task: image::INPAINTING,
                mask_png: Some(mask_png(image.width, image.height, &flags)),
            },
            _ => Edit {
                task: image::TO_IMAGE,
                mask_png: None,
            },
        });
    };
    let mask = decode("mask", mask)?;
    if (mask.width, mask.height) != (image.width, image.height) {
        return Err(request::bad(
            "mask",
            format!(
                "'mask' is {}x{} but 'image' is {}x{}; they must be the same size",
                mask.width, mask.height, image.width, image.height
            ),
        ));
    }
    let flags = mask.transparent.ok_or_else(|| {
        request::bad(
            "mask",
            "'mask' has no alpha channel; its fully transparent pixels mark the area to edit",
        )
    })?;
    if !flags.contains(&true) {
        return Err(request::bad(
            "mask",
            "'mask' has no fully transparent pixel, so there is nothing to edit",
        ));
    }
    Ok(Edit {
        task: image::INPAINTING,
        mask_png: Some(mask_png(mask.width, mask.height, &flags)),
    })
}

/// Decodes a PNG upload (8 or 16 bits, any colour type, palette transparency included).
fn decode(field: &str, bytes: &[u8]) -> Result<Transparency, ApiError> {
    let bad = |e: png::DecodingError| {
        request::bad(field, format!("'{field}' is not a valid PNG file: {e}"))
    };
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(bad)?;
    let (width, height) = reader.info().size();
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(request::bad(
            field,
            format!(
                "'{field}' is {width}x{height}; images of at most {MAX_PIXELS} pixels are accepted"
            ),
        ));
    }
    // The png crate (0.17 and 0.18) panics expanding a palette that is not whole RGB entries or
    // has over 256 of them, as the spec forbids (found by the `png` fuzz target).
    if let Some(palette) = &reader.info().palette
        && (palette.len() % 3 != 0 || palette.len() > 3 * 256)
    {
        return Err(request::bad(
            field,
            format!("'{field}' is not a valid PNG file: its palette is not 1 to 256 RGB entries"),
        ));
    }
    let mut pixels = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut pixels).map_err(bad)?;
    pixels.truncate(frame.buffer_size());
    let channels = match frame.color_type {
        png::ColorType::GrayscaleAlpha => Some(2),
        png::ColorType::Rgba => Some(4),
        _ => None,
    };
    Ok(Transparency {
        width: frame.width,
        height: frame.height,
        transparent: channels.map(|n| pixels.chunks_exact(n).map(|p| p[n - 1] == 0).collect()),
    })
}

/// The native mask: an 8-bit grayscale PNG, white where `repaint` is set, black elsewhere.
fn mask_png(width: u32, height: u32, repaint: &[bool]) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width, height);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let luma: Vec<u8> = repaint.iter().map(|&r| if r { 255 } else { 0 }).collect();
    encoder
        .write_header()
        .and_then(|mut writer| writer.write_image_data(&luma))
        .expect("PNG encoding into memory cannot fail");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32, color: png::ColorType, data: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut encoder = png::Encoder::new(&mut bytes, width, height);
        encoder.set_color(color);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(data).unwrap();
        drop(writer);
        bytes
    }

    /// A 2x1 RGBA image whose second pixel has alpha `alpha`.
    fn rgba(alpha: u8) -> Vec<u8> {
        png(2, 1, png::ColorType::Rgba, &[9, 9, 9, 255, 9, 9, 9, alpha])
    }

    fn luma(png_bytes: &[u8]) -> Vec<u8> {
        let mut reader = png::Decoder::new(std::io::Cursor::new(png_bytes))
            .read_info()
            .unwrap();
        let mut pixels = vec![0; reader.output_buffer_size()];
        let frame = reader.next_frame(&mut pixels).unwrap();
        assert_eq!(frame.color_type, png::ColorType::Grayscale);
        pixels.truncate(frame.buffer_size());
        pixels
    }

    #[test]
    fn transparent_pixels_of_the_image_become_white_in_an_inpainting_mask() {
        let edit = plan(&rgba(0), None).unwrap();
        assert_eq!(edit.task, "inpainting");
        assert_eq!(luma(&edit.mask_png.unwrap()), [0, 255]);
    }

    #[test]
    fn only_fully_transparent_pixels_count() {
        let edit = plan(&rgba(1), None).unwrap();
        assert_eq!(
            edit,
            Edit {
                task: image::TO_IMAGE,
                mask_png: None
            }
        );
        let opaque_rgb = png(2, 1, png::ColorType::Rgb, &[1, 2, 3, 4, 5, 6]);
        assert_eq!(plan(&opaque_rgb, None).unwrap().task, "image-to-image");
    }

    #[test]
    fn a_mask_decides_over_the_image_alpha() {
        let mask = png(2, 1, png::ColorType::GrayscaleAlpha, &[0, 0, 255, 255]);
        let edit = plan(&rgba(0), Some(&mask)).unwrap();
        assert_eq!(luma(&edit.mask_png.unwrap()), [255, 0]);
    }

    #[test]
    fn masks_of_another_size_without_alpha_or_without_transparency_are_refused() {
        let opaque_rgb = png(2, 1, png::ColorType::Rgb, &[0; 6]);
        for (mask, words) in [
            (png(1, 1, png::ColorType::Rgba, &[0; 4]), "same size"),
            (opaque_rgb, "no alpha channel"),
            (rgba(255), "nothing to edit"),
        ] {
            let error = format!("{:?}", plan(&rgba(0), Some(&mask)).unwrap_err());
            assert!(error.contains(words), "{error}");
        }
    }

    /// The CRC-32 of a PNG chunk.
    fn crc32(bytes: &[u8]) -> u32 {
        !bytes.iter().fold(!0u32, |crc, &byte| {
            (0..8).fold(crc ^ u32::from(byte), |c, _| {
                (c >> 1) ^ (0xEDB8_8320 & (c & 1).wrapping_neg())
            })
        })
    }

    /// `png_bytes` with the data of its `kind` chunk replaced by `data`.
    fn patched(png_bytes: &[u8], kind: &[u8], data: &[u8]) -> Vec<u8> {
        let mut at = 8;
        loop {
            let len = u32::from_be_bytes(png_bytes[at..at + 4].try_into().unwrap()) as usize;
            if &png_bytes[at + 4..at + 8] == kind {
                let typed = [kind, data].concat();
                let length = (data.len() as u32).to_be_bytes();
                let crc = crc32(&typed).to_be_bytes();
                let rest = &png_bytes[at + 12 + len..];
                return [&png_bytes[..at], &length, &typed, &crc, rest].concat();
            }
            at += 12 + len;
        }
    }

    #[test]
    fn images_whose_header_claims_too_many_pixels_are_refused_before_decoding() {
        let header = [0, 0x10, 0, 0, 0, 0x10, 0, 0, 8, 6, 0, 0, 0];
        let huge = patched(&rgba(0), b"IHDR", &header);
        let error = format!("{:?}", plan(&huge, None).unwrap_err());
        assert!(error.contains("'image' is 1048576x1048576"), "{error}");
        let error = format!("{:?}", plan(&rgba(0), Some(&huge)).unwrap_err());
        assert!(error.contains("at most 16777216 pixels"), "{error}");
    }

    #[test]
    fn palettes_the_png_crate_would_panic_on_are_refused() {
        let mut bytes = Vec::new();
        let mut encoder = png::Encoder::new(&mut bytes, 2, 1);
        encoder.set_color(png::ColorType::Indexed);
        encoder.set_palette(vec![0; 6]);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(&[0, 1]).unwrap();
        drop(writer);
        assert_eq!(plan(&bytes, None).unwrap().task, "image-to-image");
        for length in [4, 3 * 257] {
            let error = plan(&patched(&bytes, b"PLTE", &vec![7; length]), None).unwrap_err();
            let error = format!("{error:?}");
            assert!(error.contains("not 1 to 256 RGB entries"), "{error}");
        }
    }

    #[test]
    fn files_that_are_not_png_name_the_field() {
        let error = format!("{:?}", plan(b"GIF89a", None).unwrap_err());
        assert!(error.contains("'image' is not a valid PNG file"), "{error}");
        let error = format!("{:?}", plan(&rgba(0), Some(b"nope")).unwrap_err());
        assert!(error.contains("'mask' is not a valid PNG file"), "{error}");
    }
}
