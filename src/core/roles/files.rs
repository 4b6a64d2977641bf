//! The playbook's own directories and files (templated from the host's
//! inventory variables where asked), checked with the playbook's own
//! command when it gives one.

use super::{Check, Content, DirectoryResource, FileResource, Resources};
use crate::core::input::playbook::Playbook;

pub(super) fn paths(
    playbook: &Playbook,
    directories: &mut Vec<String>,
    files: &mut Vec<(String, bool)>,
) {
    directories.extend(playbook.directories.iter().map(|d| d.path.clone()));
    files.extend(playbook.files.iter().map(|f| (f.path.clone(), f.secret)));
}

pub(super) fn expand(
    playbook: &Playbook,
    vars: &crate::core::input::template::HostVars<'_>,
    out: &mut Resources,
) -> Result<(), String> {
    for spec in &playbook.directories {
        out.directories.push(DirectoryResource {
            path: spec.path.clone(),
            mode: spec.mode.0,
            owner: spec.owner.clone(),
            group: spec.group.clone(),
        });
    }
    for spec in &playbook.files {
        let content = if spec.template {
            crate::core::input::template::render(&spec.content, vars)
                .map_err(|e| format!("template for {}: {e}", spec.path))?
        } else {
            spec.content.clone()
        };
        out.files.push(FileResource {
            path: spec.path.clone(),
            content: Content::Bytes(content.into_bytes()),
            mode: spec.mode.0,
            owner: spec.owner.clone(),
            group: spec.group.clone(),
            secret: spec.secret,
            validate: spec.validate.clone().map(Check::Shell),
            notify: spec.notify.clone(),
        });
    }
    Ok(())
}
