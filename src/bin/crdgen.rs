//! Writes the generated CRDs: `crdgen <dir>` writes one file per CRD; `crdgen` alone prints them.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = crew_api::crds::crd_files()?;
    match std::env::args().nth(1).map(PathBuf::from) {
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            for (name, yaml) in files {
                std::fs::write(dir.join(&name), yaml)?;
                println!("wrote {}", dir.join(name).display());
            }
        }
        None => {
            for (_, yaml) in files {
                println!("---\n{yaml}");
            }
        }
    }
    Ok(())
}
