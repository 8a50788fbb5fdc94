//! HTTP resources of the notify pipeline.

use actix_web::web;

pub fn configure(_cfg: &mut web::ServiceConfig) {}
