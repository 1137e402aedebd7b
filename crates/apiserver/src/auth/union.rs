//! Several authenticators as one (kube's union authenticator plus its authenticated-group
//! adder).

use std::sync::Arc;

use super::{ALL_AUTHENTICATED, Authentication, Authenticator};

/// Asks each authenticator in order: the first that finds a user wins, and the user is put into
/// `system:authenticated`. Credentials that every authenticator which looked at them rejected
/// are rejected; no credentials at all is [`Authentication::NoCredentials`].
pub struct UnionAuthenticator {
    authenticators: Vec<Arc<dyn Authenticator>>,
}

impl std::fmt::Debug for UnionAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnionAuthenticator")
            .field("authenticators", &self.authenticators.len())
            .finish()
    }
}

impl UnionAuthenticator {
    /// Asks `authenticators` in order.
    pub fn new(authenticators: Vec<Arc<dyn Authenticator>>) -> Self {
        UnionAuthenticator { authenticators }
    }
}

impl Authenticator for UnionAuthenticator {
    fn authenticate(&self, request: &http::request::Parts) -> Authentication {
        let mut reasons = Vec::new();
        for authenticator in &self.authenticators {
            match authenticator.authenticate(request) {
                Authentication::User(mut user) => {
                    if !user.in_group(ALL_AUTHENTICATED) {
                        user.groups.push(ALL_AUTHENTICATED.to_owned());
                    }
                    return Authentication::User(user);
                }
                Authentication::NoCredentials => {}
                Authentication::Rejected(why) => reasons.push(why),
            }
        }
        if reasons.is_empty() {
            Authentication::NoCredentials
        } else {
            Authentication::Rejected(reasons.join("; "))
        }
    }
}
