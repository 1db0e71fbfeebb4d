//! Embeds the dashboard's front end (`dashboard/dist`, built by `make dashboard` with the npm packages pinned in
//! `dashboard/package-lock.json`). Without it the binary still builds, and `kubectl crew dashboard` serves a page
//! that says how to build the real one.

use std::path::Path;

const FILES: [&str; 3] = ["index.html", "app.js", "app.css"];

fn main() {
    let dist = Path::new("dashboard/dist");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let out = Path::new(&out);
    println!("cargo:rerun-if-changed=dashboard/dist");
    for file in FILES {
        println!("cargo:rerun-if-changed=dashboard/dist/{file}");
    }
    let built = FILES.iter().all(|f| dist.join(f).is_file());
    for file in FILES {
        let target = out.join(file);
        if built {
            std::fs::copy(dist.join(file), &target).expect("copy the dashboard bundle");
        } else {
            let placeholder = match file {
                "index.html" => {
                    "<!doctype html><meta charset=utf-8><title>crew dashboard</title>\
                     <p>This kubectl-crew was built without the dashboard's front end: run <code>make dashboard</code> \
                     (Node.js and npm) and build it again.</p>"
                }
                _ => "",
            };
            std::fs::write(&target, placeholder).expect("write the placeholder");
        }
    }
    std::fs::write(
        out.join("dashboard_built.rs"),
        if built { "true" } else { "false" },
    )
    .expect("write dashboard_built.rs");
    if !built {
        println!(
            "cargo:warning=dashboard/dist is missing: `kubectl crew dashboard` serves a placeholder (run `make dashboard`)"
        );
    }
}
