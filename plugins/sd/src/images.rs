//! Image plumbing: PNG and JPEG decoding, PNG encoding, masks, and conversions between images
//! and tensors.

use candle_core::{DType, Device, Result, Tensor};
use image::{GrayImage, ImageFormat, RgbImage, imageops::FilterType};
use rbee_plugin_api::PluginError;

/// Mask pixels at or above this luma are repainted; below it they are kept.
pub const MASK_THRESHOLD: u8 = 128;

fn decode(field: &str, bytes: &[u8]) -> std::result::Result<image::DynamicImage, PluginError> {
    image::load_from_memory(bytes).map_err(|e| {
        PluginError::invalid_param(field, format!("{field} is not a decodable image: {e}"))
    })
}

/// Decodes the bytes of image input `field` (PNG or JPEG) into RGB.
pub fn decode_rgb(field: &str, bytes: &[u8]) -> std::result::Result<RgbImage, PluginError> {
    decode(field, bytes).map(|image| image.to_rgb8())
}

/// Decodes the bytes of mask input `field` into luma; white (>= [`MASK_THRESHOLD`]) means
/// repaint.
pub fn decode_mask(field: &str, bytes: &[u8]) -> std::result::Result<GrayImage, PluginError> {
    decode(field, bytes).map(|image| image.to_luma8())
}

/// Encodes an RGB image as PNG bytes.
pub fn encode_png(image: &RgbImage) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, ImageFormat::Png)
        .expect("PNG encoding into memory cannot fail");
    bytes.into_inner()
}

/// `image` at `width` x `height` (Lanczos3), or unchanged when it already has that size.
pub fn resize_rgb(image: RgbImage, width: u32, height: u32) -> RgbImage {
    if image.dimensions() == (width, height) {
        return image;
    }
    image::imageops::resize(&image, width, height, FilterType::Lanczos3)
}

/// `mask` at `width` x `height` (nearest), or unchanged when it already has that size.
pub fn resize_mask(mask: GrayImage, width: u32, height: u32) -> GrayImage {
    if mask.dimensions() == (width, height) {
        return mask;
    }
    image::imageops::resize(&mask, width, height, FilterType::Nearest)
}

/// An RGB image as a `(1, 3, h, w)` f32 tensor in `[-1, 1]`.
pub fn image_to_tensor(image: &RgbImage, device: &Device) -> Result<Tensor> {
    let (width, height) = image.dimensions();
    let data: Vec<f32> = image
        .as_raw()
        .iter()
        .map(|&v| v as f32 / 127.5 - 1.0)
        .collect();
    Tensor::from_vec(data, (height as usize, width as usize, 3), device)?
        .permute((2, 0, 1))?
        .unsqueeze(0)
}

/// A `(1, 3, h, w)` tensor in `[-1, 1]` as an RGB image (clamped, rounded).
pub fn tensor_to_image(tensor: &Tensor) -> Result<RgbImage> {
    let (_, _, height, width) = tensor.dims4()?;
    let bytes = ((tensor.to_dtype(DType::F32)?.clamp(-1f32, 1f32)? + 1.0)? * 127.5)?
        .round()?
        .squeeze(0)?
        .permute((1, 2, 0))?
        .to_dtype(DType::U8)?
        .flatten_all()?
        .to_vec1::<u8>()?;
    Ok(
        RgbImage::from_raw(width as u32, height as u32, bytes)
            .expect("the buffer matches the size"),
    )
}

/// The mask at latent resolution as a `(1, 1, lh, lw)` f32 tensor of 0 and 1: a latent cell is
/// repainted when any pixel it covers is, so the repainted region covers the whole mask.
pub fn mask_to_latent(mask: &GrayImage, scale: usize, device: &Device) -> Result<Tensor> {
    let (width, height) = (mask.width() as usize, mask.height() as usize);
    let (lw, lh) = (width / scale, height / scale);
    let mut cells = vec![0f32; lw * lh];
    for (x, y, pixel) in mask.enumerate_pixels() {
        let (cx, cy) = (
            (x as usize / scale).min(lw - 1),
            (y as usize / scale).min(lh - 1),
        );
        if pixel.0[0] >= MASK_THRESHOLD {
            cells[cy * lw + cx] = 1.0;
        }
    }
    Tensor::from_vec(cells, (1, 1, lh, lw), device)
}

/// Copies the pixels of `original` where `mask` is below [`MASK_THRESHOLD`] into `generated`.
pub fn paste_unmasked(generated: &mut RgbImage, original: &RgbImage, mask: &GrayImage) {
    for (x, y, pixel) in generated.enumerate_pixels_mut() {
        if mask.get_pixel(x, y).0[0] < MASK_THRESHOLD {
            *pixel = *original.get_pixel(x, y);
        }
    }
}

/// A cheap preview of `(1, 4, lh, lw)` latents at latent resolution, as PNG bytes: a linear
/// map from the four latent channels to RGB (`factors[c]` is channel `c`'s RGB contribution).
pub fn latent_preview(latents: &Tensor, factors: &[[f32; 3]; 4]) -> Result<Vec<u8>> {
    let (_, channels, height, width) = latents.dims4()?;
    let values = latents
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let plane = height * width;
    let mut image = RgbImage::new(width as u32, height as u32);
    for (i, pixel) in image.pixels_mut().enumerate() {
        for (rgb, channel) in pixel.0.iter_mut().zip(0..3) {
            let value: f32 = (0..channels.min(4))
                .map(|c| values[c * plane + i] * factors[c][channel])
                .sum();
            *rgb = ((value.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8;
        }
    }
    Ok(encode_png(&image))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_and_jpeg_decode_and_round_trip_through_tensors() {
        let image = RgbImage::from_fn(16, 8, |x, y| image::Rgb([x as u8 * 10, y as u8 * 20, 7]));
        let decoded = decode_rgb("init_image", &encode_png(&image)).unwrap();
        assert_eq!(decoded, image);
        let tensor = image_to_tensor(&decoded, &Device::Cpu).unwrap();
        assert_eq!(tensor.dims(), [1, 3, 8, 16]);
        assert_eq!(tensor_to_image(&tensor).unwrap(), image);

        let mut jpeg = std::io::Cursor::new(Vec::new());
        image.write_to(&mut jpeg, ImageFormat::Jpeg).unwrap();
        assert_eq!(
            decode_rgb("init_image", jpeg.get_ref())
                .unwrap()
                .dimensions(),
            (16, 8)
        );
    }

    #[test]
    fn undecodable_images_name_the_field() {
        let error = decode_rgb("init_image", b"not an image").unwrap_err();
        assert_eq!(error.field.into_option().unwrap(), "init_image");
        let error = decode_mask("mask_image", b"hello").unwrap_err();
        assert_eq!(error.field.into_option().unwrap(), "mask_image");
        assert!(
            error.message.contains("not a decodable image"),
            "{}",
            error.message
        );
    }

    #[test]
    fn latent_mask_covers_every_white_pixel() {
        let mut mask = GrayImage::new(16, 16);
        mask.put_pixel(9, 1, image::Luma([255]));
        let cells = mask_to_latent(&mask, 8, &Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(cells, [0.0, 1.0, 0.0, 0.0]);
    }
}
