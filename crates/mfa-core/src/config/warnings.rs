//! What a valid configuration does that an administrator should hear about at
//! start-up (the module logs each line as a warning when it is instantiated).

use super::Config;
use crate::text::url::redact;

impl Config {
    /// One line per thing to warn about; none of them quotes a secret.
    pub fn warnings(&self) -> Vec<String> {
        let mut urls: Vec<(&str, &str)> = Vec::new();
        if let Some(push) = &self.push {
            for (index, url) in push.urls.iter().enumerate() {
                urls.push((if index == 0 { "push.url" } else { "push.secondary_url" }, url));
            }
        }
        for (item, gateway) in [("sms.url", &self.channels.sms), ("email.url", &self.channels.email)] {
            if let Some(gateway) = gateway {
                urls.push((item, &gateway.url));
            }
        }
        if let Some(pi) = &self.privacyidea {
            urls.extend(pi.client.urls.iter().map(|url| ("privacyidea.url", url.as_str())));
        }
        let mut lines: Vec<String> = urls
            .into_iter()
            .filter(|(_, url)| is_plain_http(url))
            .map(|(item, url)| {
                format!(
                    "{item} \"{}\" is plain http://: what goes there and back (codes, credentials, \
                     answers) can be read and changed on the way; use https://",
                    redact(url)
                )
            })
            .collect();
        let smtp = self.channels.smtp.as_ref();
        if smtp.is_some_and(|s| s.tls == super::SmtpTls::None) {
            lines.push(
                "smtp.tls = none: the codes cross to the mail server in clear and can be read on the way; \
                 use starttls or tls"
                    .to_string(),
            );
        }
        lines
    }
}

fn is_plain_http(url: &str) -> bool {
    url.get(..7).is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, RawConfig};

    fn config(change: impl FnOnce(&mut RawConfig)) -> Config {
        let mut raw = RawConfig { tokens: Some("/t".into()), state: Some("/s".into()), ..RawConfig::default() };
        change(&mut raw);
        Config::from_raw(&raw).unwrap()
    }

    #[test]
    fn plain_http_urls_are_named_without_their_secrets() {
        assert!(config(|_| {}).warnings().is_empty());
        let cfg = config(|raw| {
            raw.backend = Some("privacyidea".into());
            raw.privacyidea.url = Some("https://pi1.example.com HTTP://u:pw@pi2.example.com/?key=K3Y".into());
        });
        let warnings = cfg.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("privacyidea.url \"HTTP://pi2.example.com/ (credentials"), "{warnings:?}");
        assert!(warnings[0].contains("use https://"));
        assert!(!warnings[0].contains("K3Y") && !warnings[0].contains("pw"), "{warnings:?}");

        let cfg = config(|raw| {
            raw.mode = Some("auto".into());
            raw.state_key = Some("/k".into());
            raw.push.url = Some("https://push.example.com".into());
            raw.push.secondary_url = Some("http://push2.example.com".into());
            raw.sms.url = Some("http://sms.example.com/send".into());
            raw.sms.body = Some(r#"{"to": "{destination}", "text": "{message}"}"#.into());
            raw.email.url = Some("https://mail.example.com/send".into());
            raw.email.body = raw.sms.body.clone();
        });
        let warnings = cfg.warnings();
        let items: Vec<&str> = warnings.iter().filter_map(|w| w.split(' ').next()).collect();
        assert_eq!(items, ["push.secondary_url", "sms.url"]);
    }

    #[test]
    fn smtp_in_clear_is_warned_about() {
        let with_tls = |tls: &str| {
            let tls = tls.to_string();
            config(move |raw| {
                raw.mode = Some("password-then-otp".into());
                raw.state_key = Some("/k".into());
                raw.smtp.server = Some("mail.example.com".into());
                raw.smtp.from = Some("mfa@example.com".into());
                raw.smtp.tls = Some(tls.clone());
            })
            .warnings()
        };
        assert!(with_tls("starttls").is_empty());
        let warnings = with_tls("none");
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with("smtp.tls = none: "), "{warnings:?}");
    }
}
