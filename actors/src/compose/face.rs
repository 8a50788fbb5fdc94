//! Face finding: BlazeFace (detection) and the 468-point FaceMesh
//! (landmarks), both ONNX models run in pure Rust by `tract-onnx`.
//!
//! [`FaceFinder`] holds the loaded models; each compositor worker loads its
//! own once at start. Its functions take an RGB8 buffer and its dimensions
//! and return plain geometry ([`Face`]): nothing here knows about beards.
//!
//! The short-range detector (128x128, selfie-like portraits) runs first; when
//! it finds nothing the full-range one (256x256, smaller faces) runs.

use std::path::Path;
use std::sync::Arc;

use tract_onnx::pb::{self, tensor_proto::DataType, AttributeProto, TensorProto};
use tract_onnx::prelude::*;

/// FaceMesh landmark indices the beard placement reads.
pub mod landmark {
    /// The chin's lowest point.
    pub const CHIN: usize = 152;
    /// Mouth corners (subject's right, left).
    pub const MOUTH_RIGHT: usize = 61;
    pub const MOUTH_LEFT: usize = 291;
    /// Inner upper and lower lip.
    pub const UPPER_LIP_INNER: usize = 13;
    pub const LOWER_LIP_INNER: usize = 14;
    /// Top of the upper lip (philtrum bottom).
    pub const UPPER_LIP_TOP: usize = 0;
    /// Jaw points under the ears (subject's right, left).
    pub const JAW_RIGHT: usize = 172;
    pub const JAW_LEFT: usize = 397;
    /// Face sides at cheek height.
    pub const SIDE_RIGHT: usize = 234;
    pub const SIDE_LEFT: usize = 454;
    /// Eye outer corners.
    pub const EYE_RIGHT: usize = 33;
    pub const EYE_LEFT: usize = 263;
    /// Nose tip.
    pub const NOSE_TIP: usize = 1;
}

/// Why faces could not be looked for.
#[derive(Debug, thiserror::Error)]
pub enum FaceError {
    #[error("cannot load face model {name}: {reason}")]
    Load { name: String, reason: String },
    #[error("face model failed: {0}")]
    Run(String),
}

/// A point in image pixels.
pub type Point = [f32; 2];

/// An axis-aligned box in image pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaceBox {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

impl FaceBox {
    pub fn centre(&self) -> Point {
        [self.x + self.w / 2.0, self.y + self.h / 2.0]
    }

    pub fn area(&self) -> f32 {
        self.w.max(0.0) * self.h.max(0.0)
    }

    fn iou(&self, other: &FaceBox) -> f32 {
        let x0 = self.x.max(other.x);
        let y0 = self.y.max(other.y);
        let x1 = (self.x + self.w).min(other.x + other.w);
        let y1 = (self.y + self.h).min(other.y + other.h);
        let inter = (x1 - x0).max(0.0) * (y1 - y0).max(0.0);
        let union = self.area() + other.area() - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }
}

/// One detection: a box, its score and BlazeFace's six keypoints (right
/// eye, left eye, nose, mouth, right ear, left ear; "right" is the
/// subject's, on the image's left).
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub bbox: FaceBox,
    pub score: f32,
    pub keypoints: [Point; 6],
}

/// A face with its 468 FaceMesh landmarks in image pixels.
#[derive(Debug, Clone)]
pub struct Face {
    pub detection: Detection,
    pub landmarks: Vec<Point>,
}

impl Face {
    pub fn at(&self, index: usize) -> Point {
        self.landmarks[index]
    }

    /// Width of the face at cheek height (landmarks 234 to 454).
    pub fn width(&self) -> f32 {
        distance(self.at(landmark::SIDE_RIGHT), self.at(landmark::SIDE_LEFT))
    }
}

pub fn distance(a: Point, b: Point) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// A borrowed RGB8 image.
#[derive(Clone, Copy)]
pub struct Rgb<'a> {
    pub pixels: &'a [u8],
    pub width: u32,
    pub height: u32,
}

impl Rgb<'_> {
    /// Bilinear sample of channel values at (x, y) in pixel coordinates
    /// (pixel centres at +0.5); outside the image reads as black.
    #[inline]
    fn sample(&self, x: f32, y: f32) -> [f32; 3] {
        let fx = x - 0.5;
        let fy = y - 0.5;
        let x0 = fx.floor();
        let y0 = fy.floor();
        let ax = fx - x0;
        let ay = fy - y0;
        let (x0, y0) = (x0 as i64, y0 as i64);
        let w = i64::from(self.width);
        let h = i64::from(self.height);
        let px = |x: i64, y: i64| -> [f32; 3] {
            if x < 0 || y < 0 || x >= w || y >= h {
                return [0.0; 3];
            }
            let i = ((y * w + x) * 3) as usize;
            [
                f32::from(self.pixels[i]),
                f32::from(self.pixels[i + 1]),
                f32::from(self.pixels[i + 2]),
            ]
        };
        let (p00, p10, p01, p11) = (
            px(x0, y0),
            px(x0 + 1, y0),
            px(x0, y0 + 1),
            px(x0 + 1, y0 + 1),
        );
        let mut out = [0.0; 3];
        for c in 0..3 {
            let top = p00[c] + (p10[c] - p00[c]) * ax;
            let bottom = p01[c] + (p11[c] - p01[c]) * ax;
            out[c] = top + (bottom - top) * ay;
        }
        out
    }

    /// Average of the source pixels under a `step`x`step` footprint
    /// centred at (x, y): a cheap anti-aliased downscale sample.
    #[inline]
    fn sample_area(&self, x: f32, y: f32, step: f32) -> [f32; 3] {
        if step <= 1.5 {
            return self.sample(x, y);
        }
        let q = step / 4.0;
        let mut acc = [0.0f32; 3];
        for (dx, dy) in [(-q, -q), (q, -q), (-q, q), (q, q)] {
            let s = self.sample(x + dx, y + dy);
            for c in 0..3 {
                acc[c] += s[c];
            }
        }
        acc.map(|v| v / 4.0)
    }
}

/// The loaded detector and landmark models. Load once per worker.
pub struct FaceFinder {
    short_range: Arc<TypedRunnableModel>,
    full_range: Arc<TypedRunnableModel>,
    mesh: Arc<TypedRunnableModel>,
    /// Minimum detection score (after sigmoid).
    pub min_score: f32,
}

/// Model file names inside the models folder.
pub const SHORT_RANGE_MODEL: &str = "blazeface_front_128.onnx";
pub const FULL_RANGE_MODEL: &str = "blazeface_back_256.onnx";
pub const MESH_MODEL: &str = "face_landmark_468.onnx";
const MESH_SIDE: usize = 192;
const NMS_IOU: f32 = 0.3;

/// Time spent in each model, for the benchmark split.
#[derive(Debug, Default, Clone, Copy)]
pub struct FaceTimings {
    pub detect: std::time::Duration,
    pub landmarks: std::time::Duration,
}

impl FaceFinder {
    /// Loads the three models from `dir`.
    pub fn load(dir: &Path) -> Result<FaceFinder, FaceError> {
        Ok(FaceFinder {
            short_range: load_model(&dir.join(SHORT_RANGE_MODEL), [1, 128, 128, 3])?,
            full_range: load_model(&dir.join(FULL_RANGE_MODEL), [1, 256, 256, 3])?,
            mesh: load_model(&dir.join(MESH_MODEL), [1, 3, MESH_SIDE, MESH_SIDE])?,
            min_score: 0.5,
        })
    }

    /// Finds every face (short-range detector, then full-range when the
    /// first finds none), largest first, each with its landmarks.
    pub fn find(&self, image: Rgb<'_>) -> Result<(Vec<Face>, FaceTimings), FaceError> {
        let started = std::time::Instant::now();
        let mut detections = self.detect(&self.short_range, 128, image)?;
        if detections.is_empty() {
            detections = self.detect(&self.full_range, 256, image)?;
        }
        detections.sort_by(|a, b| b.bbox.area().total_cmp(&a.bbox.area()));
        let detect = started.elapsed();
        let started = std::time::Instant::now();
        let faces = detections
            .into_iter()
            .map(|d| self.landmarks(image, d))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((
            faces,
            FaceTimings {
                detect,
                landmarks: started.elapsed(),
            },
        ))
    }

    /// Landmarks for a face box given by hand (`face=x,y,w,h`): eyes are
    /// assumed level.
    pub fn landmarks_in_box(&self, image: Rgb<'_>, bbox: FaceBox) -> Result<Face, FaceError> {
        let [cx, cy] = bbox.centre();
        let keypoints = [
            [cx - bbox.w * 0.2, cy - bbox.h * 0.15],
            [cx + bbox.w * 0.2, cy - bbox.h * 0.15],
            [cx, cy],
            [cx, cy + bbox.h * 0.25],
            [bbox.x, cy],
            [bbox.x + bbox.w, cy],
        ];
        self.landmarks(
            image,
            Detection {
                bbox,
                score: 1.0,
                keypoints,
            },
        )
    }

    fn detect(
        &self,
        model: &Arc<TypedRunnableModel>,
        side: usize,
        image: Rgb<'_>,
    ) -> Result<Vec<Detection>, FaceError> {
        // Letterbox: the image centred in a square of its longer side.
        let square = image.width.max(image.height) as f32;
        let pad_x = (square - image.width as f32) / 2.0;
        let pad_y = (square - image.height as f32) / 2.0;
        let step = square / side as f32;
        let mut input = vec![0f32; side * side * 3];
        for row in 0..side {
            let y = (row as f32 + 0.5) * step - pad_y;
            for col in 0..side {
                let x = (col as f32 + 0.5) * step - pad_x;
                let rgb = image.sample_area(x, y, step);
                let i = (row * side + col) * 3;
                for c in 0..3 {
                    input[i + c] = rgb[c] / 127.5 - 1.0;
                }
            }
        }
        let tensor = Tensor::from_shape(&[1, side, side, 3], &input).map_err(run_err)?;
        let outputs = model.run(tvec!(tensor.into())).map_err(run_err)?;
        // The converted models give the two anchor grids as separate
        // outputs (16x16x2 = 512 and 8x8x6 = 384 anchors), in no fixed
        // order: tell them apart by size and concatenate in anchor order.
        let mut parts: [Option<Vec<f32>>; 4] = [None, None, None, None];
        for out in outputs.iter() {
            let values: Vec<f32> = out
                .to_plain_array_view::<f32>()
                .map_err(run_err)?
                .iter()
                .copied()
                .collect();
            let slot = match values.len() {
                8192 => 0,
                6144 => 1,
                512 => 2,
                384 => 3,
                896 if out.shape().last() == Some(&1) => {
                    parts[2] = Some(values);
                    parts[3] = Some(Vec::new());
                    continue;
                }
                14336 => {
                    parts[0] = Some(values);
                    parts[1] = Some(Vec::new());
                    continue;
                }
                _ => continue,
            };
            parts[slot] = Some(values);
        }
        let [Some(r0), Some(r1), Some(s0), Some(s1)] = parts else {
            return Err(FaceError::Run(
                "detector outputs are not 896 box regressors and scores".into(),
            ));
        };
        let regressors = [r0, r1].concat();
        let scores = [s0, s1].concat();
        let raw = decode_blazeface(&regressors, &scores, side as f32, self.min_score);
        Ok(weighted_nms(raw)
            .into_iter()
            .map(|d| to_image(d, square, pad_x, pad_y))
            .collect())
    }

    fn landmarks(&self, image: Rgb<'_>, detection: Detection) -> Result<Face, FaceError> {
        let crop = MeshCrop::for_detection(&detection);
        let n = MESH_SIDE;
        let step = crop.side / n as f32;
        let mut input = vec![0f32; 3 * n * n];
        for v in 0..n {
            for u in 0..n {
                let [x, y] = crop.to_image([u as f32 + 0.5, v as f32 + 0.5]);
                let rgb = image.sample_area(x, y, step);
                for c in 0..3 {
                    input[c * n * n + v * n + u] = rgb[c] / 255.0;
                }
            }
        }
        let tensor = Tensor::from_shape(&[1, 3, n, n], &input).map_err(run_err)?;
        let outputs = self.mesh.run(tvec!(tensor.into())).map_err(run_err)?;
        let points = outputs
            .iter()
            .find(|o| o.len() == 1404)
            .ok_or_else(|| FaceError::Run("landmark output is not 1404 values".into()))?;
        let values: Vec<f32> = points
            .to_plain_array_view::<f32>()
            .map_err(run_err)?
            .iter()
            .copied()
            .collect();
        let landmarks = values
            .chunks_exact(3)
            .map(|p| crop.to_image([p[0], p[1]]))
            .collect();
        Ok(Face {
            detection,
            landmarks,
        })
    }
}

fn run_err(e: impl std::fmt::Display) -> FaceError {
    FaceError::Run(e.to_string())
}

/// Loads an ONNX model for a fixed input shape, working around tract's
/// reading of a `ConstantOfShape` without `value` as f64 (the ONNX spec
/// says float32 zero): the attribute is added before the model is built.
fn load_model(path: &Path, shape: [usize; 4]) -> Result<Arc<TypedRunnableModel>, FaceError> {
    let load_err = |reason: String| FaceError::Load {
        name: path.display().to_string(),
        reason,
    };
    let onnx = tract_onnx::onnx();
    let mut file = std::fs::File::open(path).map_err(|e| load_err(e.to_string()))?;
    let mut proto = onnx
        .proto_model_for_read(&mut file)
        .map_err(|e| load_err(e.to_string()))?;
    if let Some(graph) = proto.graph.as_mut() {
        add_constant_of_shape_values(graph);
    }
    onnx.model_for_proto_model(&proto)
        .and_then(|m| m.with_input_fact(0, f32::fact(shape).into()))
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(|e| load_err(format!("{e:#}")))
}

fn add_constant_of_shape_values(graph: &mut pb::GraphProto) {
    for node in &mut graph.node {
        if node.op_type == "ConstantOfShape" && !node.attribute.iter().any(|a| a.name == "value") {
            node.attribute.push(AttributeProto {
                name: "value".into(),
                r#type: pb::attribute_proto::AttributeType::Tensor as i32,
                t: Some(TensorProto {
                    dims: vec![1],
                    data_type: DataType::Float as i32,
                    float_data: vec![0.0],
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
    }
}

/// BlazeFace anchor centres (normalised): a 16x16 grid with 2 anchors per
/// cell, then an 8x8 grid with 6 per cell — 896 in all.
pub fn anchors() -> Vec<Point> {
    let mut out = Vec::with_capacity(896);
    for (grid, per_cell) in [(16usize, 2usize), (8, 6)] {
        for row in 0..grid {
            for col in 0..grid {
                for _ in 0..per_cell {
                    out.push([
                        (col as f32 + 0.5) / grid as f32,
                        (row as f32 + 0.5) / grid as f32,
                    ]);
                }
            }
        }
    }
    out
}

/// Decodes the raw outputs into detections in normalised square
/// coordinates, keeping those whose sigmoid score reaches `min_score`.
pub fn decode_blazeface(
    regressors: &[f32],
    logits: &[f32],
    input_side: f32,
    min_score: f32,
) -> Vec<Detection> {
    let mut out = Vec::new();
    for (i, anchor) in anchors().into_iter().enumerate() {
        let (Some(logit), Some(r)) = (logits.get(i), regressors.get(i * 16..i * 16 + 16)) else {
            break;
        };
        let score = 1.0 / (1.0 + (-logit.clamp(-100.0, 100.0)).exp());
        if score < min_score {
            continue;
        }
        let cx = r[0] / input_side + anchor[0];
        let cy = r[1] / input_side + anchor[1];
        let w = r[2] / input_side;
        let h = r[3] / input_side;
        let mut keypoints = [[0.0; 2]; 6];
        for (k, kp) in keypoints.iter_mut().enumerate() {
            *kp = [
                r[4 + 2 * k] / input_side + anchor[0],
                r[5 + 2 * k] / input_side + anchor[1],
            ];
        }
        out.push(Detection {
            bbox: FaceBox {
                x: cx - w / 2.0,
                y: cy - h / 2.0,
                w,
                h,
            },
            score,
            keypoints,
        });
    }
    out
}

/// Weighted non-maximum suppression: each cluster of boxes overlapping the
/// best one by IoU > 0.3 becomes their score-weighted mean.
pub fn weighted_nms(mut detections: Vec<Detection>) -> Vec<Detection> {
    detections.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut out = Vec::new();
    while let Some(best) = detections.first().cloned() {
        let (cluster, rest): (Vec<_>, Vec<_>) = detections
            .into_iter()
            .partition(|d| d.bbox.iou(&best.bbox) > NMS_IOU);
        detections = rest;
        let total: f32 = cluster.iter().map(|d| d.score).sum();
        let mut merged = best.clone();
        if total > 0.0 {
            let wmean = |f: &dyn Fn(&Detection) -> f32| {
                cluster.iter().map(|d| f(d) * d.score).sum::<f32>() / total
            };
            merged.bbox = FaceBox {
                x: wmean(&|d| d.bbox.x),
                y: wmean(&|d| d.bbox.y),
                w: wmean(&|d| d.bbox.w),
                h: wmean(&|d| d.bbox.h),
            };
            for k in 0..6 {
                merged.keypoints[k] =
                    [wmean(&|d| d.keypoints[k][0]), wmean(&|d| d.keypoints[k][1])];
            }
        }
        out.push(merged);
    }
    out
}

fn to_image(d: Detection, square: f32, pad_x: f32, pad_y: f32) -> Detection {
    let map = |p: Point| [p[0] * square - pad_x, p[1] * square - pad_y];
    Detection {
        bbox: FaceBox {
            x: d.bbox.x * square - pad_x,
            y: d.bbox.y * square - pad_y,
            w: d.bbox.w * square,
            h: d.bbox.h * square,
        },
        score: d.score,
        keypoints: d.keypoints.map(map),
    }
}

/// The FaceMesh input crop: a square of side 1.5 x max(w, h) centred on the
/// face box, rotated so that the eye line is level.
#[derive(Debug, Clone, Copy)]
pub struct MeshCrop {
    pub centre: Point,
    pub side: f32,
    /// Eye-line angle in radians (image y down).
    pub angle: f32,
}

impl MeshCrop {
    pub fn for_detection(d: &Detection) -> MeshCrop {
        let [re, le] = [d.keypoints[0], d.keypoints[1]];
        MeshCrop {
            centre: d.bbox.centre(),
            side: 1.5 * d.bbox.w.max(d.bbox.h),
            angle: (le[1] - re[1]).atan2(le[0] - re[0]),
        }
    }

    /// Crop pixel (0..192) to image pixel.
    pub fn to_image(&self, p: Point) -> Point {
        let scale = self.side / MESH_SIDE as f32;
        let du = (p[0] - MESH_SIDE as f32 / 2.0) * scale;
        let dv = (p[1] - MESH_SIDE as f32 / 2.0) * scale;
        let (s, c) = self.angle.sin_cos();
        [
            self.centre[0] + du * c - dv * s,
            self.centre[1] + du * s + dv * c,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_are_896_anchors_in_grid_order() {
        let a = anchors();
        assert_eq!(a.len(), 896);
        assert_eq!(a[0], [0.5 / 16.0, 0.5 / 16.0]);
        assert_eq!(a[1], a[0]);
        assert_eq!(a[2], [1.5 / 16.0, 0.5 / 16.0]);
        assert_eq!(a[512], [0.5 / 8.0, 0.5 / 8.0]);
        assert_eq!(a[895], [7.5 / 8.0, 7.5 / 8.0]);
    }

    #[test]
    fn decode_keeps_only_confident_anchors_and_offsets_by_the_anchor() {
        let mut regs = vec![0f32; 896 * 16];
        let mut logits = vec![-10f32; 896];
        logits[2] = 5.0;
        regs[2 * 16..2 * 16 + 4].copy_from_slice(&[12.8, 0.0, 25.6, 51.2]);
        let d = decode_blazeface(&regs, &logits, 128.0, 0.5);
        assert_eq!(d.len(), 1);
        let b = d[0].bbox;
        assert!((b.centre()[0] - (1.5 / 16.0 + 0.1)).abs() < 1e-5);
        assert!((b.w - 0.2).abs() < 1e-5 && (b.h - 0.4).abs() < 1e-5);
    }

    #[test]
    fn nms_merges_overlapping_boxes_and_keeps_separate_ones() {
        let det = |x: f32, score: f32| Detection {
            bbox: FaceBox {
                x,
                y: 0.0,
                w: 1.0,
                h: 1.0,
            },
            score,
            keypoints: [[x, 0.0]; 6],
        };
        let out = weighted_nms(vec![det(0.0, 0.9), det(0.1, 0.9), det(5.0, 0.6)]);
        assert_eq!(out.len(), 2);
        assert!((out[0].bbox.x - 0.05).abs() < 1e-5);
        assert_eq!(out[1].bbox.x, 5.0);
    }

    #[test]
    fn mesh_crop_maps_its_centre_to_the_box_centre_and_rotates() {
        let crop = MeshCrop {
            centre: [100.0, 50.0],
            side: 192.0,
            angle: std::f32::consts::FRAC_PI_2,
        };
        let c = crop.to_image([96.0, 96.0]);
        assert!((c[0] - 100.0).abs() < 1e-4 && (c[1] - 50.0).abs() < 1e-4);
        // One pixel right in the crop is one pixel down in the image.
        let p = crop.to_image([97.0, 96.0]);
        assert!((p[0] - 100.0).abs() < 1e-4 && (p[1] - 51.0).abs() < 1e-4);
    }

    #[test]
    fn bilinear_sample_reads_pixel_centres_exactly() {
        let pixels = [10u8, 20, 30, 110, 120, 130];
        let img = Rgb {
            pixels: &pixels,
            width: 2,
            height: 1,
        };
        assert_eq!(img.sample(0.5, 0.5), [10.0, 20.0, 30.0]);
        assert_eq!(img.sample(1.0, 0.5), [60.0, 70.0, 80.0]);
    }
}
