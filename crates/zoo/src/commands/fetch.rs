//! `zoo fetch`: put a model's weights in the local cache, from the hub or, for a third-party
//! model, by downloading and converting the original checkpoint.

use anyhow::{bail, Result};
use pixel_zoo::Zoo;

use crate::cli::FetchArgs;

pub fn run(zoo: &Zoo, args: FetchArgs) -> Result<()> {
    let FetchArgs { id, url } = args;
    let entry = zoo.entry(&id)?;
    let source = match url.as_deref() {
        Some(_) if entry.upstream.is_none() => {
            bail!("--url is for third-party models (a mirror of the original checkpoint); '{id}' is on the hub")
        }
        Some(url) => zoo.resolver.import_from_url(entry, url)?,
        None => zoo.resolver.fetch(entry, None)?.source,
    };
    eprintln!("{id}: {} ({}), sha256 verified", source.path().display(), source.kind());
    Ok(())
}
