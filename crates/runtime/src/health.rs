//! The telemetry every reconciling component starts with: the controller metrics and a readiness check that the
//! API server answers.

use std::sync::Arc;
use std::time::Duration;

use ironnet_telemetry::Telemetry;
use tokio::sync::watch;

/// How often the API server is probed for readiness.
pub const APISERVER_PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// A [`Telemetry`] with the controller metrics ([`crate::metrics`]) registered and the readiness check
/// `apiserver-reachable`, which passes while the last probe of `client` (`GET /version`, every
/// [`APISERVER_PROBE_INTERVAL`]) succeeded. The probe runs on a background task (checks themselves must not block)
/// for as long as the process lives. Must be called inside a tokio runtime.
pub fn controller_telemetry(client: &kube::Client) -> Telemetry {
    let telemetry = Telemetry::new();
    telemetry.register(crate::metrics::register);
    let (tx, rx) = watch::channel(Err::<(), String>("not probed yet".into()));
    let client = client.clone();
    tokio::spawn(async move {
        loop {
            let result =
                match tokio::time::timeout(APISERVER_PROBE_INTERVAL, client.apiserver_version()).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(format!("GET /version: {e}")),
                    Err(_) => Err(format!(
                        "GET /version: no answer within {APISERVER_PROBE_INTERVAL:?}"
                    )),
                };
            // Everyone reading the result may be gone (the Telemetry dropped): then so is the reason to probe.
            if tx.send(result).is_err() {
                return;
            }
            tokio::time::sleep(APISERVER_PROBE_INTERVAL).await;
        }
    });
    let rx = Arc::new(rx);
    telemetry.add_readiness_check("apiserver-reachable", move || rx.borrow().clone());
    telemetry
}
