//! Interface claims: which device (TAP port) each NetworkInterface occupies, persisted so that a restarted
//! metalnet puts every interface back on the same port.
//!
//! A claim is the file `<metalnet-dir>/netfns/claims/<NetworkInterface UID>` holding the device's name, as in
//! upstream metalnet (`netfns/claim.go`). Upstream refuses to start when a claim names a device that is not
//! available (a stale `/var/lib/metalnet` from another setup); here such a claim is reported and left alone: its
//! interface gets a fresh device when it is reconciled, the other interfaces are not held hostage.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A port interfaces can be placed on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Device {
    /// The TAP netdev name (what `status.tapDevice.name` reports and the claim file holds).
    pub name: String,
    /// The dpservice device name (`CreateInterface.device_name`, listed back as `Interface.pci_name`).
    pub device: String,
}

impl Device {
    /// Parses `NAME[=DEVICE]` (device defaults to the name). Names must be non-empty and free of `/`.
    pub fn parse(s: &str) -> Option<Device> {
        let (name, device) = s.split_once('=').unwrap_or((s, s));
        let ok = |v: &str| !v.is_empty() && !v.contains('/') && !v.contains('=');
        (ok(name) && ok(device)).then(|| Device {
            name: name.to_owned(),
            device: device.to_owned(),
        })
    }
}

/// Why a claim could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// Every device is claimed (0: none is configured, see `--tap-device` / `--tapdevice-mod`).
    #[error("no free device: {}", if *.0 == 0 { "none configured (--tap-device, --tapdevice-mod)".to_owned() } else { format!("all {} devices are claimed", .0) })]
    Exhausted(usize),
    /// The claim file could not be written or removed.
    #[error("claim file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// A claim found on disk that names no available device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleClaim {
    /// The NetworkInterface UID (file name).
    pub uid: String,
    /// The device name the file holds.
    pub name: String,
}

/// Splits the claims read from disk into valid ones and stale ones (unknown device, or a device already claimed
/// by an earlier UID in sorted order). Pure.
pub fn partition_claims(
    files: &BTreeMap<String, String>,
    devices: &[Device],
) -> (BTreeMap<String, Device>, Vec<StaleClaim>) {
    let mut valid: BTreeMap<String, Device> = BTreeMap::new();
    let mut stale = Vec::new();
    for (uid, name) in files {
        let taken = valid.values().any(|d| &d.name == name);
        match devices.iter().find(|d| &d.name == name) {
            Some(d) if !taken => {
                valid.insert(uid.clone(), d.clone());
            }
            _ => stale.push(StaleClaim {
                uid: uid.clone(),
                name: name.clone(),
            }),
        }
    }
    (valid, stale)
}

/// The first device (in configuration order) no claim holds. Pure.
pub fn first_free<'a>(devices: &'a [Device], claims: &BTreeMap<String, Device>) -> Option<&'a Device> {
    devices
        .iter()
        .find(|d| !claims.values().any(|c| c.name == d.name))
}

/// The claims of this node, on disk and in memory.
#[derive(Debug)]
pub struct ClaimStore {
    dir: PathBuf,
    devices: Vec<Device>,
    claims: Mutex<BTreeMap<String, Device>>,
    stale: Vec<StaleClaim>,
}

impl ClaimStore {
    /// Opens (creating) `<metalnet_dir>/netfns/claims` and loads its claims. Stale claims are logged and kept
    /// on disk (see [`ClaimStore::stale`]).
    pub fn open(metalnet_dir: &Path, devices: Vec<Device>) -> io::Result<ClaimStore> {
        let dir = metalnet_dir.join("netfns").join("claims");
        std::fs::create_dir_all(&dir)?;
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let Some(uid) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if uid.starts_with('.') || !entry.file_type()?.is_file() {
                continue;
            }
            let name = std::fs::read_to_string(entry.path())?.trim().to_owned();
            files.insert(uid, name);
        }
        let (claims, stale) = partition_claims(&files, &devices);
        for s in &stale {
            tracing::warn!(
                uid = %s.uid,
                device = %s.name,
                "stale interface claim: the device is not available (or claimed twice); the interface gets a new device"
            );
        }
        Ok(ClaimStore {
            dir,
            devices,
            claims: Mutex::new(claims),
            stale,
        })
    }

    /// The claims found at start that name no available device.
    pub fn stale(&self) -> &[StaleClaim] {
        &self.stale
    }

    /// The configured devices.
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// The device with dpservice device name `device`.
    pub fn by_device(&self, device: &str) -> Option<Device> {
        self.devices.iter().find(|d| d.device == device).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Device>> {
        self.claims.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The device claimed by `uid`.
    pub fn get(&self, uid: &str) -> Option<Device> {
        self.lock().get(uid).cloned()
    }

    /// Every valid claim, by UID.
    pub fn all(&self) -> BTreeMap<String, Device> {
        self.lock().clone()
    }

    fn write(&self, uid: &str, d: &Device) -> Result<(), ClaimError> {
        let path = self.dir.join(uid);
        let tmp = self.dir.join(format!(".{uid}.tmp"));
        let io = |source| ClaimError::Io {
            path: path.clone(),
            source,
        };
        // Write-then-rename: a crash leaves either the old claim or the new one, never a torn file.
        std::fs::write(&tmp, &d.name).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }

    /// The device of `uid`, claiming the first free one if it has none.
    pub fn get_or_claim(&self, uid: &str) -> Result<Device, ClaimError> {
        let mut claims = self.lock();
        if let Some(d) = claims.get(uid) {
            return Ok(d.clone());
        }
        let d = first_free(&self.devices, &claims)
            .cloned()
            .ok_or(ClaimError::Exhausted(self.devices.len()))?;
        self.write(uid, &d)?;
        claims.insert(uid.to_owned(), d.clone());
        Ok(d)
    }

    /// Records that `uid` occupies `device` (found in dpservice after a restart without a claim file). Another
    /// claim on that device is dropped: dpservice is the truth about which port an interface is on.
    pub fn adopt(&self, uid: &str, device: &Device) -> Result<(), ClaimError> {
        let mut claims = self.lock();
        if claims.get(uid) == Some(device) {
            return Ok(());
        }
        let others: Vec<String> = claims
            .iter()
            .filter(|(u, d)| u.as_str() != uid && d.name == device.name)
            .map(|(u, _)| u.clone())
            .collect();
        for other in others {
            tracing::warn!(uid = %other, device = %device.name, "claim superseded by the interface dpservice has on the device");
            claims.remove(&other);
            self.remove_file(&other)?;
        }
        self.write(uid, device)?;
        claims.insert(uid.to_owned(), device.clone());
        Ok(())
    }

    fn remove_file(&self, uid: &str) -> Result<(), ClaimError> {
        let path = self.dir.join(uid);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ClaimError::Io { path, source: e }),
            _ => Ok(()),
        }
    }

    /// Releases the claim of `uid` (file removed, device free again).
    pub fn release(&self, uid: &str) -> Result<(), ClaimError> {
        let mut claims = self.lock();
        self.remove_file(uid)?;
        claims.remove(uid);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devs(names: &[&str]) -> Vec<Device> {
        names.iter().map(|n| Device::parse(n).unwrap()).collect()
    }

    #[test]
    fn device_syntax() {
        assert_eq!(
            Device::parse("dtapvf_0=net_tap2"),
            Some(Device {
                name: "dtapvf_0".into(),
                device: "net_tap2".into()
            })
        );
        assert_eq!(Device::parse("x").map(|d| d.device), Some("x".into()));
        for bad in ["", "=", "a=", "=b", "a/b", "a=b=c"] {
            assert_eq!(Device::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn unknown_and_doubly_claimed_devices_are_stale_not_fatal() {
        let devices = devs(&["a", "b"]);
        let files: BTreeMap<String, String> = [("u1", "a"), ("u2", "zzz"), ("u3", "a"), ("u4", "b")]
            .iter()
            .map(|(u, n)| (u.to_string(), n.to_string()))
            .collect();
        let (valid, stale) = partition_claims(&files, &devices);
        assert_eq!(valid.keys().collect::<Vec<_>>(), ["u1", "u4"]);
        assert_eq!(
            stale.iter().map(|s| s.uid.as_str()).collect::<Vec<_>>(),
            ["u2", "u3"]
        );
        assert_eq!(first_free(&devices, &valid), None);
        assert_eq!(
            first_free(&devices, &BTreeMap::new()).map(|d| d.name.as_str()),
            Some("a")
        );
    }

    #[test]
    fn claims_persist_and_release() {
        let dir = tempfile::tempdir().unwrap();
        let store = ClaimStore::open(dir.path(), devs(&["a=d0", "b=d1"])).unwrap();
        assert_eq!(store.get_or_claim("u1").unwrap().name, "a");
        assert_eq!(store.get_or_claim("u1").unwrap().name, "a", "idempotent");
        assert_eq!(store.get_or_claim("u2").unwrap().name, "b");
        assert!(matches!(store.get_or_claim("u3"), Err(ClaimError::Exhausted(2))));
        let file = dir.path().join("netfns/claims/u2");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "b");
        drop(store);

        // A stale claim (a device from another setup) is reported, and does not stop the others loading.
        std::fs::write(dir.path().join("netfns/claims/u9"), "gone\n").unwrap();
        let store = ClaimStore::open(dir.path(), devs(&["a=d0", "b=d1"])).unwrap();
        assert_eq!(store.get("u1").map(|d| d.device), Some("d0".into()));
        assert_eq!(
            store.stale(),
            [StaleClaim {
                uid: "u9".into(),
                name: "gone".into()
            }]
        );
        store.release("u2").unwrap();
        assert!(!file.exists());
        assert_eq!(store.get_or_claim("u3").unwrap().name, "b");

        // Adopting what dpservice reports moves the device to the interface that really has it.
        let a = store.by_device("d0").unwrap();
        store.adopt("u7", &a).unwrap();
        assert_eq!(store.get("u7").map(|d| d.name), Some("a".into()));
        assert_eq!(store.get("u1"), None);
        assert!(!dir.path().join("netfns/claims/u1").exists());
    }
}
