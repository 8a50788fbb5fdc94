//! HTTP resources of the watermark pipeline.

use actix_web::web;

pub fn configure(_cfg: &mut web::ServiceConfig) {}
