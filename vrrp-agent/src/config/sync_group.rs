//! `vrrp_sync_group NAME { group { VI_1 VI_2 ... } }`: instances that change state together.

use super::{Diagnostic, Instance, Statement, SyncGroup, builder::Builder};

impl Builder {
    pub(super) fn vrrp_sync_group(&mut self, s: &Statement) {
        let [name] = s.args.as_slice() else {
            self.errors.push(
                Diagnostic::new(
                    &s.keyword.location,
                    "vrrp_sync_group needs exactly one name",
                )
                .hint("write `vrrp_sync_group VG_1 {`"),
            );
            return;
        };
        let Some(block) = self.block(s) else { return };
        let mut members = Vec::new();
        let mut notify = super::Notify::default();
        let mut tracks = Vec::new();
        let mut tracking_weight = false;
        for st in block {
            match st.keyword.text.as_str() {
                "group" => {
                    if let Some(list) = self.block(st) {
                        for m in list {
                            if let Some(extra) = m.args.first() {
                                self.errors.push(Diagnostic::new(
                                    &extra.location,
                                    "list one vrrp_instance name per line",
                                ));
                            }
                            members.push((m.keyword.text.clone(), m.keyword.location.clone()));
                        }
                    }
                }
                // keepalived 2.2.7 takes notify_deleted per instance only.
                "notify_deleted" => self.unknown(st, "vrrp_sync_group"),
                "sync_group_tracking_weight" => tracking_weight = self.flag(st),
                _ if self.notify_keyword(st, &mut notify) => {}
                _ if self.track_keyword(st, &mut tracks) => {}
                _ => self.unknown(st, "vrrp_sync_group"),
            }
        }
        self.sync_groups.push((
            SyncGroup {
                name: name.text.clone(),
                location: s.keyword.location.clone(),
                members: members.iter().map(|(n, _)| n.clone()).collect(),
                notify,
                tracks: tracks
                    .into_iter()
                    .map(|(track, at): (super::Track, super::Location)| {
                        self.track_refs.push((track.what.clone(), at));
                        track
                    })
                    .collect(),
                tracking_weight,
            },
            members.into_iter().map(|(_, at)| at).collect(),
        ));
    }

    /// Checks the groups against the instances: every member exists and belongs to one group;
    /// a one-member group is ignored with a warning, as keepalived does.
    pub(super) fn check_sync_groups(&mut self, instances: &[Instance]) -> Vec<SyncGroup> {
        let mut owner: Vec<(String, String)> = Vec::new();
        let mut out = Vec::new();
        for (group, locations) in std::mem::take(&mut self.sync_groups) {
            let mut ok = true;
            for (member, at) in group.members.iter().zip(&locations) {
                if !instances.iter().any(|i| &i.name == member) {
                    ok = false;
                    self.errors.push(
                        Diagnostic::new(at, format!("no vrrp_instance named `{member}`"))
                            .hint("sync group members are vrrp_instance names"),
                    );
                } else if let Some((_, other)) = owner.iter().find(|(m, _)| m == member) {
                    ok = false;
                    self.errors.push(Diagnostic::new(
                        at,
                        format!("vrrp_instance {member} is already in sync group {other}"),
                    ));
                } else {
                    owner.push((member.clone(), group.name.clone()));
                }
            }
            if group.members.len() < 2 {
                self.warnings.push(
                    Diagnostic::new(
                        &group.location,
                        format!(
                            "sync group {} has fewer than two members and is ignored",
                            group.name
                        ),
                    )
                    .hint("a sync group ties several vrrp_instances together"),
                );
            } else if ok {
                out.push(group);
            }
        }
        out
    }
}
