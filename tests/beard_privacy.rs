//! Photos live in memory only: a request carrying a marker byte pattern
//! leaves no trace of it in the log folder or the database files.

mod beard_support;

use beard_support::start;

const MARKER: &[u8] = b"TASKLET-PRIVATE-PHOTO-MARKER-9c41e7";

/// The JPEG with a comment segment (COM) holding the marker right after SOI.
fn with_marker(jpeg: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    let len = (MARKER.len() + 2) as u16;
    out.extend_from_slice(&[0xFF, 0xFE]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(MARKER);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[actix_rt::test]
async fn photos_are_never_written_to_logs_or_the_database() {
    let logs = tempfile::tempdir().unwrap();
    let guard = tasklet::telemetry::init(&tasklet::config::LogSettings {
        level: "debug".into(),
        format: tasklet::config::LogFormat::Json,
        dir: logs.path().display().to_string(),
    })
    .unwrap();
    let s = start(3, |_| {}).await;
    let photo = with_marker(&beard_support::face("grace_hopper_512x600.jpg"));
    let resp = s.post("style=full", "image/jpeg", photo.clone()).await;
    assert_eq!(resp.status(), 200, "the marker is only a JPEG comment");
    // Failing requests carry it too: the answers and logs must not echo it.
    for (query, content_type, body) in [
        ("style=full", "image/jpeg", MARKER.to_vec()),
        ("style=walrus", "image/jpeg", photo.clone()),
        ("style=full", "text/plain", photo.clone()),
        (
            "style=full",
            "image/jpeg",
            photo[..photo.len() / 2].to_vec(),
        ),
    ] {
        let resp = s.post(query, content_type, body).await;
        assert!(resp.status().is_client_error());
        let body = resp.bytes().await.unwrap();
        assert!(!body.windows(MARKER.len()).any(|w| w == MARKER));
    }
    let dir = s.stop().await;
    let db_dir = dir.path().to_path_buf();
    drop(guard);
    let mut searched = 0;
    let mut log_bytes = 0;
    for path in files_under(logs.path())
        .into_iter()
        .chain(files_under(&db_dir))
    {
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            // SQLite removes its -wal and -shm files when its last
            // connection closes, which may come just after the listing.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{}: {e}", path.display()),
        };
        if path.starts_with(logs.path()) {
            log_bytes += bytes.len();
        }
        searched += 1;
        assert!(
            !bytes.windows(MARKER.len()).any(|w| w == MARKER),
            "{} holds the photo's marker",
            path.display()
        );
    }
    assert!(
        searched >= 2,
        "the log and the database were there to search"
    );
    assert!(log_bytes > 0, "the requests were logged");
}
