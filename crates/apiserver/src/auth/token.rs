//! Bearer-token authentication: `Authorization: Bearer <token>` checked against token
//! authenticators (the static token file of `--token-auth-file`, signed tokens).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::{Authentication, Authenticator, UserInfo};

/// One token authenticator's verdict on a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenVerdict {
    /// The token is valid for this user.
    User(UserInfo),
    /// This authenticator does not know the token (another may).
    Unknown,
    /// The token is this authenticator's but invalid (bad signature, expired); the reason is logged.
    Rejected(String),
}

/// Checks bearer tokens (kube's `authenticator.Token`).
pub trait TokenAuthenticator: Send + Sync + 'static {
    /// The verdict on `token`. Must not block.
    fn authenticate_token(&self, token: &str) -> TokenVerdict;
}

/// Authenticates requests by their bearer token with each token authenticator in turn; a token
/// none of them knows is rejected (401), as kube-apiserver's bearer-token authenticator does.
pub struct BearerAuthenticator {
    authenticators: Vec<Arc<dyn TokenAuthenticator>>,
}

impl std::fmt::Debug for BearerAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuthenticator")
            .field("authenticators", &self.authenticators.len())
            .finish()
    }
}

impl BearerAuthenticator {
    /// Asks `authenticators` in order.
    pub fn new(authenticators: Vec<Arc<dyn TokenAuthenticator>>) -> Self {
        BearerAuthenticator { authenticators }
    }
}

/// The bearer token of a request: `Authorization: Bearer <token>` (the scheme is
/// case-insensitive). Other schemes, and an empty token, are no token.
pub fn bearer_token(request: &http::request::Parts) -> Option<&str> {
    let value = request.headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl Authenticator for BearerAuthenticator {
    fn authenticate(&self, request: &http::request::Parts) -> Authentication {
        let Some(token) = bearer_token(request) else {
            return Authentication::NoCredentials;
        };
        let mut reasons = Vec::new();
        for authenticator in &self.authenticators {
            match authenticator.authenticate_token(token) {
                TokenVerdict::User(user) => return Authentication::User(user),
                TokenVerdict::Unknown => {}
                TokenVerdict::Rejected(why) => reasons.push(why),
            }
        }
        if reasons.is_empty() {
            reasons.push("invalid bearer token".into());
        }
        Authentication::Rejected(reasons.join("; "))
    }
}

/// Errors reading a token file.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file cannot be read.
    #[error("reading token file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A record is malformed.
    #[error("token file {path}, line {line}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// The 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// kube-apiserver's static token file (`--token-auth-file`): CSV records
/// `token,user,uid[,"group1,group2"]`. Empty tokens are skipped; of duplicate tokens the last
/// wins (both with a warning), as in kube-apiserver.
#[derive(Clone, Default)]
pub struct TokenFile {
    tokens: HashMap<String, UserInfo>,
}

impl std::fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenFile")
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

impl TokenFile {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<TokenFile, TokenFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Io {
            path: path.display().to_string(),
            source,
        })?;
        TokenFile::parse(&text, &path.display().to_string())
    }

    /// Parses the file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<TokenFile, TokenFileError> {
        let mut tokens = HashMap::new();
        let invalid = |line: usize, message: String| TokenFileError::Invalid {
            path: path.to_owned(),
            line,
            message,
        };
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            if line.trim().is_empty() {
                continue;
            }
            let fields = parse_csv_line(line).map_err(|m| invalid(number, m))?;
            if fields.len() < 3 {
                return Err(invalid(
                    number,
                    format!(
                        "must have at least 3 columns (token, user name, user uid), found {}",
                        fields.len()
                    ),
                ));
            }
            if fields[0].is_empty() {
                tracing::warn!(path, line = number, "empty token in token file, skipped");
                continue;
            }
            if fields[1].is_empty() {
                return Err(invalid(number, "the user name is empty".into()));
            }
            let groups = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let user = UserInfo {
                name: fields[1].clone(),
                uid: fields[2].clone(),
                groups,
                extra: Default::default(),
            };
            if tokens.insert(fields[0].clone(), user).is_some() {
                tracing::warn!(
                    path,
                    line = number,
                    "duplicate token in token file, the last one wins"
                );
            }
        }
        Ok(TokenFile { tokens })
    }

    /// How many tokens the file holds.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the file holds no token.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

impl TokenAuthenticator for TokenFile {
    fn authenticate_token(&self, token: &str) -> TokenVerdict {
        match self.tokens.get(token) {
            Some(user) => TokenVerdict::User(user.clone()),
            None => TokenVerdict::Unknown,
        }
    }
}

/// One CSV record as Go's `encoding/csv` reads it with `TrimLeadingSpace`: fields separated by
/// commas, optionally double-quoted (a quote inside a quoted field is doubled).
fn parse_csv_line(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("a quoted field is not closed".into()),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(c) => return Err(format!("unexpected {c:?} after a quoted field")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field.trim_end_matches('\r').to_owned());
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => return Err("a bare \" in an unquoted field".into()),
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kube_token_files() {
        let file = TokenFile::parse(
            "t1,alice,uid-1,\"dev,ops\"\n\n t2, bob,uid-2\n,nobody,x\nt1,carol,uid-3,admins\n",
            "tokens.csv",
        )
        .unwrap();
        assert_eq!(file.len(), 2);
        let TokenVerdict::User(carol) = file.authenticate_token("t1") else {
            panic!("t1 is known")
        };
        assert_eq!(carol.name, "carol");
        assert_eq!(carol.groups, vec!["admins"]);
        let TokenVerdict::User(bob) = file.authenticate_token("t2") else {
            panic!("t2 is known")
        };
        assert_eq!((bob.name.as_str(), bob.uid.as_str()), ("bob", "uid-2"));
        assert!(bob.groups.is_empty());
        assert_eq!(file.authenticate_token("t3"), TokenVerdict::Unknown);

        let groups = TokenFile::parse("t,alice,1,\"a, b ,,c\"", "f").unwrap();
        let TokenVerdict::User(alice) = groups.authenticate_token("t") else {
            panic!()
        };
        assert_eq!(alice.groups, vec!["a", "b", "c"]);
    }

    #[test]
    fn malformed_files_name_the_line() {
        let err = TokenFile::parse("t,alice,1\nt2,bob\n", "tokens.csv").unwrap_err();
        assert_eq!(
            err.to_string(),
            "token file tokens.csv, line 2: must have at least 3 columns (token, user name, user uid), found 2"
        );
        let err = TokenFile::parse("t,alice,1,\"a,b\n", "f").unwrap_err();
        assert!(
            err.to_string().contains("line 1: a quoted field is not closed"),
            "{err}"
        );
        let err = TokenFile::parse("t,,1\n", "f").unwrap_err();
        assert!(err.to_string().contains("the user name is empty"), "{err}");
    }

    #[test]
    fn bearer_header_parsing() {
        let parts = |v: &str| {
            http::Request::builder()
                .header("authorization", v)
                .body(())
                .unwrap()
                .into_parts()
                .0
        };
        assert_eq!(bearer_token(&parts("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&parts("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(&parts("Basic abc")), None);
        assert_eq!(bearer_token(&parts("Bearer ")), None);
    }
}
