//! The start of every gateway test world: a member who owns a carpool
//! group, in an in-memory store.

use aicarpool_core::id::new_id;
use aicarpool_core::limits::KeyLimits;
use aicarpool_core::org::{Group, GroupRole, Membership, User};
use aicarpool_core::store::{GroupStore, MemoryStore, UserStore};

/// Creates a user and a carpool group they own, with the group `limits`.
pub async fn owner_and_group(store: &MemoryStore, limits: KeyLimits) -> (User, Group) {
    let now = chrono::Utc::now();
    let user = User {
        id: new_id(),
        email: format!("{}@example.com", new_id().to_lowercase()),
        name: "Member".into(),
        password_hash: String::new(),
        is_system_admin: false,
        created_at: now,
    };
    store.create_user(&user).await.unwrap();
    let group = Group {
        id: new_id(),
        name: "carpool".into(),
        enterprise_id: None,
        department_id: None,
        max_members: None,
        limits,
        created_by: user.id.clone(),
        created_at: now,
    };
    let owner = Membership {
        group_id: group.id.clone(),
        user_id: user.id.clone(),
        role: GroupRole::Owner,
        joined_at: now,
    };
    store.create_group(&group, &owner).await.unwrap();
    (user, group)
}
