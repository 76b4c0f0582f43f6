//! The cost model's defaults that are policy, not data: per-GPU host floors for GPUs attached to a
//! host of the optimizer's choosing ([`HostFloors`]), and the home geography that breaks equal-cost
//! ties between regions ([`Geography`]). Both are [`crate::Policy`] fields: documented, overridable,
//! and each has an "off" value.

use std::collections::BTreeMap;

use serde::Serialize;
use skyplan_catalog::Offer;

/// The least host one accelerator gets, per accelerator (scaled by the GPU count).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HostFloor {
    /// vCPUs per accelerator.
    pub vcpus: f64,
    /// Memory per accelerator in GiB.
    pub memory_gib: f64,
}

impl HostFloor {
    /// `vcpus` per accelerator and the memory of a standard host of that size (3.75 GiB per vCPU,
    /// GCP's `n1-standard` ratio).
    pub fn standard(vcpus: f64) -> Self {
        HostFloor {
            vcpus,
            memory_gib: vcpus * 3.75,
        }
    }
}

/// Per-GPU host floors: the smallest host a requirement gets when it names an accelerator but
/// leaves the host's size open (no `cpus`, no `memory`, no `instance_type`).
///
/// **Where they apply.** Only to offers whose host is a free choice independent of the GPU: GCP's
/// host VM + attachable GPU combinations (the catalog pairs K80/P4/P100/V100/T4 rows with every N1
/// host up to GCP's attach limit, down to the 1-vCPU `n1-standard-1`). Every other GPU offer is a
/// shape the cloud sells with its GPUs (AWS `p3.2xlarge`, Azure `NC*`, GCP `g2-*`/`a2-*`/`a3-*`,
/// Lambda, ...) or live capacity (a Kubernetes node's free share, `local`): those are taken as
/// they are, so a floor never removes a fixed shape, however small (a cluster with 2 free vCPUs
/// per T4 stays usable).
///
/// **The table** (per GPU; the vCPUs are SkyPilot's `_NUM_ACC_TO_NUM_CPU`, which follows AWS's
/// dedicated GPU machines; memory is a standard host of that many vCPUs, 3.75 GiB each):
///
/// | accelerator | vCPUs | GiB | derived from |
/// | --- | --- | --- | --- |
/// | K80 | 4 | 15 | AWS `p2.xlarge` (4 vCPU per K80) |
/// | T4 | 4 | 15 | AWS `g4dn.xlarge` (4 vCPU, 16 GiB) |
/// | V100 | 8 | 30 | AWS `p3.2xlarge` (8 vCPU, 61 GiB; `p3.16xlarge` 64 per 8) |
/// | P100 | 8 | 30 | SkyPilot's choice (no AWS P100) |
/// | P4 and any other | 8 | 30 | SkyPilot's `DEFAULT` row |
///
/// So `V100:1` gets at least `n1-standard-8` (8 vCPU, 30 GiB), `T4:1` at least `n1-standard-4`.
/// SkyPilot asks 4 GiB per vCPU (32 GiB for `V100:1`) and finds `n1-highmem-8`; the embedded
/// catalog has no `n1-highmem`, and within GCP's V100:1 attach limit (12 vCPU) no `n1-standard`
/// host has 32 GiB, so a 4 GiB ratio would drop GCP's V100 entirely for 2 GiB. Counts scale the
/// floor linearly (`T4:4` → 16 vCPU; SkyPilot asks 48 there, after `g4dn.12xlarge`).
///
/// **Never infeasible.** If the floor leaves a requirement without any candidate (a price cap, a
/// zone pin, blocked places), that requirement is solved without it.
///
/// ```
/// use skyplan_optimizer::HostFloors;
/// let floors = HostFloors::default();
/// assert_eq!(floors.floor_for("V100", 1.0), Some((8.0, 30.0)));
/// assert_eq!(floors.floor_for("T4", 2.0), Some((8.0, 30.0)));
/// assert_eq!(HostFloors::off().floor_for("V100", 1.0), None);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostFloors {
    /// Canonical accelerator name → its floor per accelerator.
    pub per_accelerator: BTreeMap<String, HostFloor>,
    /// The floor for accelerators not in the table; `None`: no floor for them.
    pub other: Option<HostFloor>,
}

impl Default for HostFloors {
    fn default() -> Self {
        let per_accelerator = [
            ("K80", 4.0),
            ("T4", 4.0),
            ("V100", 8.0),
            ("P100", 8.0),
            ("P4", 8.0),
        ]
        .into_iter()
        .map(|(name, vcpus)| (name.to_string(), HostFloor::standard(vcpus)))
        .collect();
        HostFloors {
            per_accelerator,
            other: Some(HostFloor::standard(8.0)),
        }
    }
}

impl HostFloors {
    /// No floors at all: the host is whatever is cheapest (the behaviour before floors existed).
    pub fn off() -> Self {
        HostFloors {
            per_accelerator: BTreeMap::new(),
            other: None,
        }
    }

    /// The (vCPUs, GiB) floor for `count` of the canonical accelerator `name`, if any.
    pub fn floor_for(&self, name: &str, count: f64) -> Option<(f64, f64)> {
        let floor = self.per_accelerator.get(name).or(self.other.as_ref())?;
        Some((floor.vcpus * count, floor.memory_gib * count))
    }

    /// Whether `offer` is a host chosen independently of its GPUs: a GCP GPU offer that is neither
    /// one of GCP's GPU machine types (`skyplan_catalog::gcp::machine_type_accelerators`) nor a
    /// TPU VM, i.e. a host VM + attachable GPU combination.
    pub fn host_is_chosen(offer: &Offer) -> bool {
        offer.cloud.eq_ignore_ascii_case("gcp")
            && offer.accelerator.is_some()
            && offer.instance_type != "TPU-VM"
            && skyplan_catalog::gcp::machine_type_accelerators(&offer.instance_type).is_none()
    }

    /// Whether `offer` meets the floor for its own accelerators (offers whose host is not a
    /// choice always do; so does a host whose size the catalog does not say).
    pub fn admits(&self, offer: &Offer) -> bool {
        if !Self::host_is_chosen(offer) {
            return true;
        }
        let Some(name) = offer.accelerator.as_deref() else {
            return true;
        };
        let Some((vcpus, memory_gib)) = self.floor_for(name, offer.accelerator_count) else {
            return true;
        };
        offer.vcpus.is_none_or(|have| have + 1e-9 >= vcpus)
            && offer.memory_gib.is_none_or(|have| have + 1e-9 >= memory_gib)
    }
}

/// Clouds whose "regions" are kubeconfig contexts or hosts, not places: of unknown geography.
const NEUTRAL_CLOUDS: &[&str] = &["kubernetes", "local"];

/// A home geography: where equal-cost work should go (ties only; cost always comes first).
///
/// A region belongs to the geography when its name starts with one of `region_prefixes`
/// (case-insensitive). Most clouds put the geography first (`us-east-1`, `us-central1`,
/// Lambda's `us-midwest-1`); Azure puts it last (`eastus2`), so the `us` geography lists Azure's
/// US region stems as prefixes too (`eastus` also matches `eastus2`). Kubernetes contexts and
/// `local` hosts are neutral: of unknown geography, they rank after home regions and before
/// regions known to be elsewhere.
///
/// ```
/// use skyplan_optimizer::Geography;
/// let us = Geography::us();
/// assert!(us.contains("us-east-1") && us.contains("us-central1") && us.contains("westus3"));
/// assert!(!us.contains("asia-northeast-1") && !us.contains("northamerica-northeast1"));
/// let eu = Geography::new("eu", ["eu-", "europe-"]);
/// assert!(eu.contains("europe-west4") && eu.contains("eu-central-1"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Geography {
    /// Name for messages (`us`).
    pub name: String,
    /// Region-name prefixes, lower-case.
    pub region_prefixes: Vec<String>,
}

impl Default for Geography {
    fn default() -> Self {
        Geography::us()
    }
}

impl Geography {
    /// A geography from its region-name prefixes.
    pub fn new<S: AsRef<str>>(name: impl Into<String>, prefixes: impl IntoIterator<Item = S>) -> Self {
        Geography {
            name: name.into(),
            region_prefixes: prefixes
                .into_iter()
                .map(|p| p.as_ref().to_ascii_lowercase())
                .collect(),
        }
    }

    /// The United States: `us-*` (AWS, GCP, Lambda, ...) and Azure's `*us*` region names.
    pub fn us() -> Self {
        Geography::new(
            "us",
            [
                "us-",
                "eastus",
                "westus",
                "centralus",
                "northcentralus",
                "southcentralus",
                "westcentralus",
            ],
        )
    }

    /// No home: every region ranks the same, ties fall to names.
    pub fn none() -> Self {
        Geography::new("none", Vec::<String>::new())
    }

    /// Whether `region` belongs to this geography.
    pub fn contains(&self, region: &str) -> bool {
        let region = region.as_bytes();
        self.region_prefixes.iter().any(|prefix| {
            region
                .get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
        })
    }

    /// Tie rank of an offer's place: 0 home, 1 neutral (Kubernetes, `local`), 2 elsewhere; all 0
    /// when there is no home.
    pub fn rank(&self, offer: &Offer) -> u8 {
        if self.region_prefixes.is_empty() {
            0
        } else if NEUTRAL_CLOUDS.iter().any(|c| offer.cloud.eq_ignore_ascii_case(c)) {
            1
        } else if self.contains(&offer.region) {
            0
        } else {
            2
        }
    }
}
