//! The texts of notifications: one minijinja template per ending and
//! channel, embedded, each overridable by a file in `templates_dir`.

use std::path::{Path, PathBuf};

use actors::notification::Ending;
use minijinja::{context, Environment};
use schemas::order::Outcome;

/// Why the templates could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("reading template {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("template {name}: {source}")]
    Syntax { name: String, source: minijinja::Error },
    #[error("rendering {name}: {source}")]
    Render { name: String, source: minijinja::Error },
}

/// What a template is for: a channel's body, or an email's subject.
pub const PARTS: [&str; 4] = ["email", "email_subject", "webhook", "log"];

const ENDINGS: [Outcome; 3] = [Outcome::Completed, Outcome::Failed, Outcome::Cancelled];

/// The embedded template `<ending>.<part>.txt`.
fn embedded(name: &str) -> Option<&'static str> {
    Some(match name {
        "completed.email.txt" => include_str!("templates/completed.email.txt"),
        "completed.email_subject.txt" => include_str!("templates/completed.email_subject.txt"),
        "completed.webhook.txt" => include_str!("templates/completed.webhook.txt"),
        "completed.log.txt" => include_str!("templates/completed.log.txt"),
        "failed.email.txt" => include_str!("templates/failed.email.txt"),
        "failed.email_subject.txt" => include_str!("templates/failed.email_subject.txt"),
        "failed.webhook.txt" => include_str!("templates/failed.webhook.txt"),
        "failed.log.txt" => include_str!("templates/failed.log.txt"),
        "cancelled.email.txt" => include_str!("templates/cancelled.email.txt"),
        "cancelled.email_subject.txt" => include_str!("templates/cancelled.email_subject.txt"),
        "cancelled.webhook.txt" => include_str!("templates/cancelled.webhook.txt"),
        "cancelled.log.txt" => include_str!("templates/cancelled.log.txt"),
        _ => return None,
    })
}

fn name(outcome: Outcome, part: &str) -> String {
    format!("{}.{part}.txt", outcome.event_type())
}

/// Every template, compiled once at start-up so a broken override fails
/// the node's start rather than a customer's notification.
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// The embedded templates, each replaced by `<dir>/<name>` when that
    /// file exists (`dir` empty: embedded only).
    pub fn load(dir: &Path) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        // Plain text: nothing to escape, and a missing value renders empty.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        for outcome in ENDINGS {
            for part in PARTS {
                let name = name(outcome, part);
                let path = dir.join(&name);
                let source = if !dir.as_os_str().is_empty() && path.is_file() {
                    std::fs::read_to_string(&path).map_err(|source| TemplateError::Read { path, source })?
                } else {
                    embedded(&name).unwrap_or_default().to_owned()
                };
                env.add_template_owned(name.clone(), source)
                    .map_err(|source| TemplateError::Syntax { name, source })?;
            }
        }
        Ok(Self { env })
    }

    /// Renders `part` (a channel, or `email_subject`) for `ending`.
    pub fn render(&self, ending: &Ending, part: &str) -> Result<String, TemplateError> {
        let name = name(ending.outcome, part);
        let render = |source| TemplateError::Render {
            name: name.clone(),
            source,
        };
        let template = self.env.get_template(&name).map_err(render)?;
        let text = template
            .render(context! {
                order_id => ending.order_id.to_string(),
                customer_id => ending.customer_id.as_str(),
                status => ending.outcome.status(),
                ending => ending.outcome.event_type(),
                reason => ending.reason.clone().unwrap_or_default(),
            })
            .map_err(render)?;
        Ok(text.trim_end().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use schemas::{CustomerId, OrderId};

    use super::*;

    fn ending(reason: Option<&str>) -> Ending {
        Ending {
            order_id: OrderId::random(),
            customer_id: CustomerId::parse("alice").unwrap(),
            outcome: Outcome::Failed,
            reason: reason.map(str::to_owned),
        }
    }

    #[test]
    fn every_ending_and_part_has_an_embedded_template() {
        let templates = Templates::load(Path::new("")).unwrap();
        for outcome in ENDINGS {
            for part in PARTS {
                let e = Ending {
                    outcome,
                    ..ending(None)
                };
                assert!(!templates.render(&e, part).unwrap().is_empty(), "{outcome:?} {part}");
            }
        }
        let text = templates.render(&ending(Some("card declined")), "webhook").unwrap();
        assert!(text.contains("Reason: card declined"), "{text}");
    }

    #[test]
    fn a_file_overrides_its_template_and_a_broken_one_fails_loading() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("failed.log.txt"),
            "FAILED {{ order_id }} / {{ reason }}",
        )
        .unwrap();
        let templates = Templates::load(dir.path()).unwrap();
        let e = ending(Some("why"));
        assert_eq!(
            templates.render(&e, "log").unwrap(),
            format!("FAILED {} / why", e.order_id)
        );
        std::fs::write(dir.path().join("failed.email.txt"), "{% if %}").unwrap();
        assert!(matches!(Templates::load(dir.path()), Err(TemplateError::Syntax { .. })));
    }
}
