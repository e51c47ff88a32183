//! What an operator can do to one instance over the control socket
//! (`vrrp-agent instance NAME fault|resume|send-garp`).

use super::Daemon;
use crate::{
    control::{InstanceAction, Reply},
    election::{Action, Input, State},
};

impl Daemon {
    /// Carries out an operator's action on the instance called `name`.
    pub(super) async fn instance_action(&mut self, name: &str, action: InstanceAction) -> Reply {
        let Some(index) = self.instances.iter().position(|i| i.config.name == name) else {
            let known: Vec<&str> = self
                .instances
                .iter()
                .map(|i| i.config.name.as_str())
                .collect();
            return Reply::Error {
                error: format!(
                    "no vrrp_instance named {name} (running: {})",
                    known.join(", ")
                ),
            };
        };
        let message = match action {
            InstanceAction::Fault => {
                self.instances[index].forced_fault = true;
                if self.instances[index].election.state() != State::Fault {
                    self.handle(index, Input::Fault).await;
                }
                format!("{name} held in FAULT until `resume`")
            }
            InstanceAction::Resume => {
                let instance = &mut self.instances[index];
                let was = std::mem::replace(&mut instance.forced_fault, false);
                if !was {
                    return Reply::Error {
                        error: format!("{name} is not held in FAULT"),
                    };
                }
                if !instance.link_up {
                    format!("{name} released, but its interface is down: it stays in FAULT")
                } else {
                    self.handle(index, Input::Recover).await;
                    format!("{name} released from FAULT")
                }
            }
            InstanceAction::SendGarp => {
                if self.instances[index].election.state() != State::Master {
                    return Reply::Error {
                        error: format!(
                            "{name} is not MASTER: only a master announces its addresses"
                        ),
                    };
                }
                self.apply(index, Action::SendGratuitousArp).await;
                format!("{name}: gratuitous ARPs / unsolicited NAs sent")
            }
        };
        tracing::info!("{message}");
        Reply::Done { message }
    }
}
