//! `zoo import`: convert a third-party checkpoint into the zoo's layout and install it in the
//! local weights cache (or write it to a file).

use anyhow::{bail, Result};
use pixel_zoo::Zoo;

use crate::cli::ImportArgs;
use crate::context::check_output;

pub fn run(zoo: &Zoo, args: ImportArgs) -> Result<()> {
    let ImportArgs { format, file, id, output } = args;
    let of_format = |e: &&pixel_zoo::ModelEntry| e.upstream.as_ref().is_some_and(|u| u.format == format.name());
    let entry = match id.as_deref() {
        Some(id) => {
            let e = zoo.entry(id)?;
            if !of_format(&e) {
                bail!("'{id}' is not a third-party model in the {} format", format.name());
            }
            e
        }
        None => {
            let found: Vec<_> = zoo.manifest.models.iter().filter(of_format).collect();
            match found.as_slice() {
                [one] => *one,
                [] => bail!("no model in the manifest is imported from {}", format.name()),
                many => bail!(
                    "several models are imported from {}: pick one with --id ({})",
                    format.name(),
                    many.iter().map(|e| e.id.as_str()).collect::<Vec<_>>().join(", ")
                ),
            }
        }
    };
    if let Some(out) = output.as_deref() {
        check_output(out)?;
    }
    let dest = pixel_zoo::import::install(entry, &file, &zoo.resolver.zoo_cache, output.as_deref())?;
    eprintln!("{}: converted {} → {} (sha256 verified)", entry.id, file.display(), dest.display());
    Ok(())
}
