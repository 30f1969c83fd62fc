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

    #[test]
    fn files_that_are_not_png_name_the_field() {
        let error = format!("{:?}", plan(b"GIF89a", None).unwrap_err());
        assert!(error.contains("'image' is not a valid PNG file"), "{error}");
        let error = format!("{:?}", plan(&rgba(0), Some(b"nope")).unwrap_err());
        assert!(error.contains("'mask' is not a valid PNG file"), "{error}");
    }
}
