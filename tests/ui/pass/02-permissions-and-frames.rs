//! Permission checks on session functions; hub-fed streams of pre-encoded frames.
use pikku::prelude::*;

pub struct Services {
    hub: pikku::MemoryHub,
}
pub struct Session {
    user: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserPath {
    user_id: String,
}

#[derive(Serialize, Deserialize, JsonSchema)]
pub struct Note {
    text: String,
}

async fn is_self(_s: &Services, input: &UserPath, session: &Session) -> bool {
    input.user_id == session.user
}

mod checks {
    pub async fn always(_s: &super::Services, _i: &super::UserPath, _u: &super::Session) -> bool {
        true
    }
}

#[pikku_func(route = "/users/{userId}/notes", response = "stream", permissions = [is_self, checks::always])]
async fn notes(s: &Services, input: UserPath, _session: &Session, ctx: &Context) -> pikku::Result<impl Stream<Item = Frame<Note>>> {
    let sub = s.hub.resume(&format!("notes:{}", input.user_id), ctx.last_event_id()).await?;
    Ok(sub.frames())
}

fn main() {
    assert_eq!(notes::route().path, "/users/{userId}/notes");
}
