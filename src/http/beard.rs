//! HTTP resources of the beard pipeline.

use actix_web::web;

pub fn configure(_cfg: &mut web::ServiceConfig) {}
