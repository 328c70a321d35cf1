//! The program's principals and passwords (part of the binary, not the library): from
//! `--user NAME:PASSWORD`, `--user-env NAME:VAR` and `--users-file PATH`. No error message
//! ever holds a password, or a line or value that may be one.

use std::path::Path;

/// A principal and its password.
pub type User = (String, String);

/// `NAME:PASSWORD` (the password may hold `:`).
pub fn from_argument(spec: &str) -> Result<User, String> {
    let (name, password) = spec
        .split_once(':')
        .ok_or("--user takes NAME:PASSWORD (the value given has no ':')")?;
    Ok((principal(name, "--user")?, password.to_owned()))
}

/// `NAME:VAR`: the password is the value of environment variable `VAR`, looked up by `env`.
pub fn from_env(spec: &str, env: impl Fn(&str) -> Option<String>) -> Result<User, String> {
    let (name, var) = spec
        .split_once(':')
        .ok_or_else(|| format!("--user-env takes NAME:VAR, not {spec:?}"))?;
    let password = env(var).ok_or_else(|| {
        format!("--user-env {spec}: environment variable {var:?} is not set (or not UTF-8)")
    })?;
    Ok((principal(name, "--user-env")?, password))
}

/// A file of `NAME:PASSWORD` lines; empty lines and lines starting with `#` are skipped.
pub fn from_file(path: &Path) -> Result<Vec<User>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--users-file {}: cannot be read: {e}", path.display()))?;
    let mut users = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let at = format!("--users-file {} line {}", path.display(), n + 1);
        let (name, password) = line
            .split_once(':')
            .ok_or_else(|| format!("{at}: not NAME:PASSWORD (no ':')"))?;
        users.push((principal(name, &at)?, password.to_owned()));
    }
    Ok(users)
}

fn principal(name: &str, at: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err(format!("{at}: the principal's name is empty"));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_and_environment() {
        assert_eq!(
            from_argument("admin:se:cret"),
            Ok(("admin".into(), "se:cret".into()))
        );
        assert!(from_argument("secret").unwrap_err().contains("NAME:PASSWORD"));
        assert!(!from_argument("secret").unwrap_err().contains("secret"));
        assert!(from_argument(":secret").is_err());
        let env = |var: &str| (var == "PW").then(|| "p w".to_owned());
        assert_eq!(from_env("bob:PW", env), Ok(("bob".into(), "p w".into())));
        assert!(from_env("bob:OTHER", env)
            .unwrap_err()
            .contains("\"OTHER\" is not set"));
        assert!(from_env("bob", env).is_err());
    }

    #[test]
    fn files_of_lines() {
        let dir = std::env::temp_dir().join(format!("users-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good");
        std::fs::write(&good, "# test users\nadmin:secret\r\n\n  \nbob:a:b c\ncarol:\n").unwrap();
        assert_eq!(
            from_file(&good),
            Ok(vec![
                ("admin".into(), "secret".into()),
                ("bob".into(), "a:b c".into()),
                ("carol".into(), String::new())
            ])
        );
        let bad = dir.join("bad");
        std::fs::write(&bad, "admin:secret\nhunter2\n").unwrap();
        let err = from_file(&bad).unwrap_err();
        assert!(err.contains("line 2") && !err.contains("hunter2"), "{err}");
        assert!(from_file(&dir.join("missing"))
            .unwrap_err()
            .contains("cannot be read"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
