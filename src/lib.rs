//! skyplan: place GPU and CPU jobs on the cheapest place that can run them right now.
//!
//! This is the facade users embed. Each stage is its own crate and usable alone:
//! [`catalog`] (offers and prices), [`optimizer`] (task specs and placement), and, as they land,
//! the providers. This crate
//! adds the embedded default catalog (compiled in from `data/`, so an installed binary works from
//! any directory) and the renderings the CLI prints.
//!
//! ```
//! let catalog = skyplan::load_catalog(None).unwrap();
//! let query = skyplan::catalog::OfferQuery::accelerator("L4", Some(1.0));
//! let cheapest = catalog.query(&query)[0];
//! assert_eq!((cheapest.cloud.as_str(), cheapest.instance_type.as_str()), ("gcp", "g2-standard-4"));
//! ```

use std::path::{Path, PathBuf};

pub use skyplan_catalog as catalog;
pub use skyplan_optimizer as optimizer;
pub use skyplan_providers as providers;

pub mod embedded;
pub mod interrupt;
pub mod launch;
pub mod plan;
pub mod queue;
pub mod render;

/// Errors from the facade: a stage's error, with the context the stage cannot know.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Loading or querying the catalog failed.
    #[error(transparent)]
    Catalog(#[from] catalog::CatalogError),
    /// A task file was invalid, or no placement satisfies it.
    #[error(transparent)]
    Optimizer(#[from] optimizer::OptimizerError),
    /// The home directory could not be determined.
    #[error("cannot find a home directory for skyplan state: set SKYPLAN_HOME or pass --home DIR")]
    NoHome,
    /// The home directory (or a directory it would be created in) is a file.
    #[error("{}", if home == file {
        format!("SKYPLAN_HOME {} is a file, expected a directory", home.display())
    } else {
        format!("SKYPLAN_HOME {} is inside {}, which is a file, expected a directory", home.display(), file.display())
    })]
    HomeIsAFile {
        /// The home asked for.
        home: PathBuf,
        /// The file in its place: the home itself or a directory above it.
        file: PathBuf,
    },
}

/// Loads the catalog: the CSVs in `dir` if given, else the embedded default catalog.
pub fn load_catalog(dir: Option<&Path>) -> Result<catalog::Catalog, Error> {
    Ok(match dir {
        Some(dir) => catalog::Catalog::load_dir(dir)?,
        None => embedded::catalog()?,
    })
}

/// Where `skyplan catalog refresh` keeps newer spot prices: `home/catalog/spot-prices.csv`.
pub fn spot_overlay_path(home: &Path) -> PathBuf {
    home.join("catalog").join("spot-prices.csv")
}

/// Lays the spot price overlay of `home` (if there is one) over `catalog`; returns how many
/// offers changed. The catalog files themselves are never written.
///
/// ```
/// let home = std::env::temp_dir().join(format!("skyplan-overlay-doc-{}", std::process::id()));
/// let mut catalog = skyplan::load_catalog(None).unwrap();
/// assert_eq!(skyplan::apply_spot_overlay(&mut catalog, &home).unwrap(), 0); // none yet
/// ```
pub fn apply_spot_overlay(catalog: &mut catalog::Catalog, home: &Path) -> Result<usize, Error> {
    Ok(catalog.apply_spot_prices(&read_spot_overlay(home)?))
}

/// The rows of the spot price overlay of `home`; none when there is no overlay yet.
pub fn read_spot_overlay(home: &Path) -> Result<Vec<catalog::SpotPrice>, Error> {
    let path = spot_overlay_path(home);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(catalog::CatalogError::Io { path, source }.into()),
    };
    Ok(catalog::parse_spot_overlay(&path.display().to_string(), &bytes)?)
}

/// The skyplan home directory: `explicit` if given, else `~/.skyplan`. Fails when it (or the
/// nearest existing directory above it) is a file; it need not exist yet.
///
/// ```
/// let file = std::env::temp_dir().join(format!("skyplan-home-doc-{}", std::process::id()));
/// std::fs::write(&file, "").unwrap();
/// let err = skyplan::home_dir(Some(&file)).unwrap_err();
/// assert!(err.to_string().ends_with("is a file, expected a directory"));
/// # std::fs::remove_file(file).unwrap();
/// ```
pub fn home_dir(explicit: Option<&Path>) -> Result<PathBuf, Error> {
    let home = match explicit {
        Some(dir) => dir.to_path_buf(),
        None => std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".skyplan"))
            .ok_or(Error::NoHome)?,
    };
    // The nearest existing ancestor decides: a directory is fine, a file is the error that
    // creating the home would otherwise report as "File exists (os error 17)".
    let existing = home
        .ancestors()
        .filter(|dir| !dir.as_os_str().is_empty())
        .find_map(|dir| std::fs::metadata(dir).ok().map(|meta| (dir, meta)));
    if let Some((dir, meta)) = existing
        && !meta.is_dir()
    {
        return Err(Error::HomeIsAFile {
            home: home.clone(),
            file: dir.to_path_buf(),
        });
    }
    Ok(home)
}
