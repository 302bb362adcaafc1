//! The messages of the outbox, in German and English: a subject, a plain-text body and a
//! simple HTML alternative, each carrying one link built from `PHOENIX_PUBLIC_URL`.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use phoenix_common::config::MailLanguage;

/// What an outbox row asks to be sent (its `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A password-reset link to an account.
    PasswordReset,
    /// A staff invitation to an email.
    Invitation,
    /// A guardian invitation to the guardian record's email.
    GuardianInvitation,
}

impl Kind {
    /// The kind stored in `auth.outbox.kind`.
    pub fn parse(kind: &str) -> Option<Self> {
        match kind {
            "password_reset" => Some(Kind::PasswordReset),
            "invitation" => Some(Kind::Invitation),
            "guardian_invitation" => Some(Kind::GuardianInvitation),
            _ => None,
        }
    }

    /// The dashboard page the link opens (`{public_url}{path}?token=…`).
    pub fn path(self) -> &'static str {
        match self {
            Kind::PasswordReset => "/reset-password",
            Kind::Invitation => "/invitation",
            Kind::GuardianInvitation => "/guardian-invitation",
        }
    }
}

/// A message ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML alternative.
    pub html: String,
}

/// The link of a message: `{public_url}{path}?token={token}` (tokens are URL-safe base64).
pub fn link(public_url: &str, kind: Kind, token: &str) -> String {
    format!("{}{}?token={token}", public_url.trim_end_matches('/'), kind.path())
}

/// The language of a stored preference (`users.guardians.language_preference`): `de…` or
/// `en…`, else `default`.
pub fn language(preference: Option<&str>, default: MailLanguage) -> MailLanguage {
    match preference.map(|p| p.trim().to_ascii_lowercase()) {
        Some(p) if p.starts_with("en") => MailLanguage::En,
        Some(p) if p.starts_with("de") => MailLanguage::De,
        _ => default,
    }
}

/// The message of `kind` in `lang` with `link`, valid until `expires_at` (shown in `zone`).
pub fn render(kind: Kind, lang: MailLanguage, link: &str, expires_at: Option<DateTime<Utc>>, zone: Tz) -> Rendered {
    let until = expires_at.map(|t| t.with_timezone(&zone));
    let (subject, intro, action, validity, ignore) = match lang {
        MailLanguage::De => {
            let validity = until.map(|t| format!("Der Link ist gültig bis {} Uhr.", t.format("%d.%m.%Y, %H:%M")));
            match kind {
                Kind::PasswordReset => (
                    "Phoenix: Passwort zurücksetzen",
                    "Für Ihr Phoenix-Konto wurde das Zurücksetzen des Passworts angefordert.",
                    "Neues Passwort festlegen",
                    validity,
                    "Wenn Sie das nicht waren, ignorieren Sie diese E-Mail; Ihr Passwort bleibt unverändert.",
                ),
                Kind::Invitation => (
                    "Phoenix: Einladung",
                    "Sie wurden zu Phoenix eingeladen, dem Anwesenheitssystem Ihrer Schule.",
                    "Einladung annehmen und Konto anlegen",
                    validity,
                    "Wenn Sie keine Einladung erwartet haben, ignorieren Sie diese E-Mail.",
                ),
                Kind::GuardianInvitation => (
                    "Phoenix: Einladung für Erziehungsberechtigte",
                    "Die Schule Ihres Kindes lädt Sie zu Phoenix ein: Dort sehen Sie, wo Ihr Kind gerade ist.",
                    "Einladung annehmen und Konto anlegen",
                    validity,
                    "Wenn Sie keine Einladung erwartet haben, ignorieren Sie diese E-Mail.",
                ),
            }
        }
        MailLanguage::En => {
            let validity = until.map(|t| format!("The link is valid until {}.", t.format("%Y-%m-%d %H:%M")));
            match kind {
                Kind::PasswordReset => (
                    "Phoenix: reset your password",
                    "Someone asked to reset the password of your Phoenix account.",
                    "Choose a new password",
                    validity,
                    "If that was not you, ignore this email; your password stays as it is.",
                ),
                Kind::Invitation => (
                    "Phoenix: invitation",
                    "You have been invited to Phoenix, your school's attendance system.",
                    "Accept the invitation and create your account",
                    validity,
                    "If you did not expect an invitation, ignore this email.",
                ),
                Kind::GuardianInvitation => (
                    "Phoenix: invitation for parents and guardians",
                    "Your child's school invites you to Phoenix, where you can see where your child is.",
                    "Accept the invitation and create your account",
                    validity,
                    "If you did not expect an invitation, ignore this email.",
                ),
            }
        }
    };
    let validity = validity.unwrap_or_default();
    let text = format!("{intro}\n\n{action}:\n{link}\n\n{validity}\n\n{ignore}\n\n-- \nPhoenix\n");
    let html = format!(
        "<!DOCTYPE html>\n<html><body>\n<p>{}</p>\n<p><a href=\"{href}\">{}</a></p>\n<p>{}</p>\n<p>{}</p>\n</body></html>\n",
        escape(intro),
        escape(action),
        escape(&validity),
        escape(ignore),
        href = escape(link),
    );
    Rendered { subject: subject.to_owned(), text, html }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_languages() {
        assert_eq!(
            link("https://p.example/", Kind::PasswordReset, "abc_-1"),
            "https://p.example/reset-password?token=abc_-1"
        );
        assert_eq!(link("https://p.example", Kind::Invitation, "t"), "https://p.example/invitation?token=t");
        assert_eq!(language(Some("EN"), MailLanguage::De), MailLanguage::En);
        assert_eq!(language(Some("de-AT"), MailLanguage::En), MailLanguage::De);
        assert_eq!(language(Some("tr"), MailLanguage::En), MailLanguage::En);
        assert_eq!(language(None, MailLanguage::De), MailLanguage::De);
    }

    #[test]
    fn both_languages_carry_the_link_and_the_local_expiry() {
        let expires = DateTime::parse_from_rfc3339("2027-01-12T13:30:00Z").expect("rfc3339").to_utc();
        let berlin = chrono_tz::Europe::Berlin;
        let de = render(Kind::PasswordReset, MailLanguage::De, "https://p.example/x?token=a&b", Some(expires), berlin);
        assert_eq!(de.subject, "Phoenix: Passwort zurücksetzen");
        assert!(de.text.contains("https://p.example/x?token=a&b") && de.text.contains("12.01.2027, 14:30 Uhr"));
        assert!(de.html.contains("href=\"https://p.example/x?token=a&amp;b\""), "{}", de.html);
        let en = render(Kind::GuardianInvitation, MailLanguage::En, "https://l", Some(expires), berlin);
        assert!(en.subject.contains("invitation") && en.text.contains("2027-01-12 14:30"), "{en:?}");
    }
}
