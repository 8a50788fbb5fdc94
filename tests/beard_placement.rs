//! Beard placement on real face photos: the beard's top edge lies between
//! the nose tip and the chin, its centre within 10% of the face width of
//! the mouth centre (both measured on the FaceMesh landmarks), the pixels
//! under it changed and those around the eyes did not.

mod beard_support;

use tasklet::sim::beards::{draw_png, ANCHOR, KINDS};
use tasklet_actors::beards::decode_beard;
use tasklet_actors::compose::beard::{opaque_top, BeardImage};
use tasklet_actors::compose::dress::{decode_photo, dress, DressError, DressOptions, FaceChoice};
use tasklet_actors::compose::face::{landmark, Face, FaceFinder, Point};

const PHOTOS: [&str; 4] = [
    "astronaut_512.png",
    "astronaut_1280x853.jpg",
    "grace_hopper_512x600.jpg",
    "grace_hopper_1280x853.jpg",
];

fn finder() -> FaceFinder {
    FaceFinder::load(&beard_support::repo().join("models")).expect("models load")
}

fn beard(kind: &str) -> BeardImage {
    decode_beard(
        &draw_png(kind, 1, kind),
        Some([ANCHOR[0] as f32, ANCHOR[1] as f32]),
    )
    .unwrap()
}

fn options() -> DressOptions {
    DressOptions {
        faces: FaceChoice::All,
        face: None,
        width_factor: 1.15,
        opacity_u8: 255,
        quality: 90,
        max_pixels: 40_000_000,
    }
}

/// (along the eye line, down the face) of `p` relative to `origin`.
fn face_frame(face: &Face, origin: Point, p: Point) -> (f32, f32) {
    let r = face.at(landmark::EYE_RIGHT);
    let l = face.at(landmark::EYE_LEFT);
    let a = (l[1] - r[1]).atan2(l[0] - r[0]);
    let (s, c) = a.sin_cos();
    let (dx, dy) = (p[0] - origin[0], p[1] - origin[1]);
    (dx * c + dy * s, -dx * s + dy * c)
}

/// Centre of the beard's opaque pixels, in beard pixels.
fn opaque_centre(b: &BeardImage) -> Point {
    let (mut x0, mut x1, mut y0, mut y1) = (u32::MAX, 0, u32::MAX, 0);
    for y in 0..b.height {
        for x in 0..b.width {
            if b.rgba[((y * b.width + x) * 4 + 3) as usize] >= 128 {
                x0 = x0.min(x);
                x1 = x1.max(x);
                y0 = y0.min(y);
                y1 = y1.max(y);
            }
        }
    }
    [(x0 + x1 + 1) as f32 / 2.0, (y0 + y1 + 1) as f32 / 2.0]
}

#[test]
fn beards_sit_between_nose_and_chin_centred_on_the_mouth() {
    let finder = finder();
    for photo in PHOTOS {
        for kind in ["full", "goatee", "moustache"] {
            let beard = beard(kind);
            let out = dress(&finder, &beard_support::face(photo), &beard, &options())
                .unwrap_or_else(|e| panic!("{photo}: {e}"));
            assert_eq!(out.faces.len(), 1, "{photo}: one face expected");
            let placed = &out.faces[0];
            let face = &placed.face;
            let width = face.width();
            assert!(width > 60.0, "{photo}: face width {width}");
            let mouth = {
                let a = face.at(landmark::MOUTH_RIGHT);
                let b = face.at(landmark::MOUTH_LEFT);
                [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0]
            };
            let top_row = opaque_top(&beard, 128).unwrap() as f32;
            let top = placed.placement.to_image([beard.anchor[0], top_row]);
            let (_, top_v) = face_frame(face, mouth, top);
            let (_, nose_v) = face_frame(face, mouth, face.at(landmark::NOSE_TIP));
            let (_, chin_v) = face_frame(face, mouth, face.at(landmark::CHIN));
            assert!(
                nose_v < top_v && top_v < chin_v,
                "{photo} {kind}: top edge {top_v:.1} not between nose {nose_v:.1} and chin {chin_v:.1}"
            );
            let centre = placed.placement.to_image(opaque_centre(&beard));
            let (du, _) = face_frame(face, mouth, centre);
            assert!(
                du.abs() <= 0.1 * width,
                "{photo} {kind}: centre {du:.1} px off the mouth (face {width:.0} px)"
            );
            // The photo changed under the beard and not around the eyes.
            let before = decode_photo(&beard_support::face(photo), u64::MAX).unwrap();
            let after = decode_photo(&out.jpeg, u64::MAX).unwrap();
            assert_eq!((after.width, after.height), (before.width, before.height));
            let diff = |p: Point| {
                let (x, y) = (p[0] as u32, p[1] as u32);
                let i = ((y * before.width + x) * 3) as usize;
                (0..3)
                    .map(|c| {
                        (i32::from(before.pixels[i + c]) - i32::from(after.pixels[i + c])).abs()
                    })
                    .sum::<i32>()
            };
            let between_eyes = {
                let a = face.at(landmark::EYE_RIGHT);
                let b = face.at(landmark::EYE_LEFT);
                [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0]
            };
            assert!(diff(between_eyes) < 40, "{photo} {kind}: eyes changed");
            let moustache = placed.placement.to_image([beard.anchor[0], top_row + 12.0]);
            assert!(
                diff(moustache) > 30,
                "{photo} {kind}: nothing drawn under the beard's top"
            );
            if kind == "full" {
                let name = photo.split('.').next().unwrap();
                std::fs::write(format!("/tmp/beard_{name}.jpg"), &out.jpeg).unwrap();
            }
        }
    }
}

#[test]
fn largest_keeps_one_face_and_a_given_box_skips_detection() {
    let finder = finder();
    let b = beard("full");
    let photo = beard_support::face("grace_hopper_512x600.jpg");
    let found = dress(&finder, &photo, &b, &options()).unwrap();
    let bbox = found.faces[0].face.detection.bbox;
    let largest = dress(
        &finder,
        &photo,
        &b,
        &DressOptions {
            faces: FaceChoice::Largest,
            ..options()
        },
    )
    .unwrap();
    assert_eq!(largest.faces.len(), 1);
    let by_hand = dress(
        &finder,
        &photo,
        &b,
        &DressOptions {
            face: Some(bbox),
            ..options()
        },
    )
    .unwrap();
    assert_eq!(by_hand.timings.detect, std::time::Duration::ZERO);
    let a = by_hand.faces[0].placement.origin;
    let d = found.faces[0].placement.origin;
    let w = found.faces[0].face.width();
    assert!(
        ((a[0] - d[0]).powi(2) + (a[1] - d[1]).powi(2)).sqrt() < 0.1 * w,
        "hand-placed mouth {a:?} far from the detected {d:?}"
    );
}

#[test]
fn a_photo_without_a_face_is_no_face() {
    let finder = finder();
    // A smooth gradient: no face anywhere.
    let img = image::RgbImage::from_fn(640, 480, |x, y| {
        image::Rgb([(x / 3) as u8, (y / 2) as u8, 90])
    });
    let mut jpeg = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    let err = dress(&finder, &jpeg, &beard("full"), &options()).unwrap_err();
    assert_eq!(err, DressError::NoFace);
}

#[test]
fn every_simulated_kind_places_without_error() {
    let finder = finder();
    let photo = beard_support::face("astronaut_512.png");
    for kind in KINDS {
        let out = dress(&finder, &photo, &beard(kind), &options()).unwrap();
        assert_eq!(out.faces.len(), 1, "{kind}");
    }
}
