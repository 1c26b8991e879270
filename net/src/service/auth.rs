//! The Auth service: enable/disable, Authenticate, and user and role management.

use super::{ask, status, unexpected};
use crate::convert::kv::header;
use crate::handle::Handle;
use crate::proto::authpb;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::auth_server::{Auth, AuthServer};
use stead_core::api::{
    AuthError, AuthRequest, AuthResponse, Error, Permission, PermissionType, Request, Response,
};
use tonic::{Request as Call, Response as Answer, Status};

/// The Auth service of one member.
pub struct AuthService {
    handle: Handle,
}

impl AuthService {
    /// The service for the member behind `handle`.
    pub fn server(handle: Handle) -> crate::service::grpc_server!(AuthServer, AuthService) {
        AuthServer::new(AuthService { handle })
    }

    async fn auth<T>(&self, call: &Call<T>, request: AuthRequest) -> Result<AuthResponse, Status> {
        match ask(&self.handle, call, Request::Auth(request)).await? {
            Response::Auth(answer) => Ok(answer),
            other => Err(unexpected(other)),
        }
    }
}

/// A permission as etcd's.
fn permission(perm: Permission) -> authpb::Permission {
    let perm_type = match perm.perm_type {
        PermissionType::Read => authpb::permission::Type::Read,
        PermissionType::Write => authpb::permission::Type::Write,
        PermissionType::ReadWrite => authpb::permission::Type::Readwrite,
    };
    authpb::Permission { perm_type: perm_type as i32, key: perm.key, range_end: perm.range_end }
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(
        &self,
        call: Call<pb::AuthEnableRequest>,
    ) -> Result<Answer<pb::AuthEnableResponse>, Status> {
        let request = AuthRequest::Enable;
        let answer = self.auth(&call, request).await?;
        Ok(Answer::new(pb::AuthEnableResponse { header: header(answer.header) }))
    }

    async fn auth_disable(
        &self,
        call: Call<pb::AuthDisableRequest>,
    ) -> Result<Answer<pb::AuthDisableResponse>, Status> {
        let request = AuthRequest::Disable;
        let answer = self.auth(&call, request).await?;
        Ok(Answer::new(pb::AuthDisableResponse { header: header(answer.header) }))
    }

    async fn user_add(
        &self,
        call: Call<pb::AuthUserAddRequest>,
    ) -> Result<Answer<pb::AuthUserAddResponse>, Status> {
        let body = call.get_ref().clone();
        let request = AuthRequest::UserAdd {
            name: body.name,
            password: body.password,
            hashed_password: String::new(),
            no_password: body.options.is_some_and(|o| o.no_password),
        };
        let answer = self.auth(&call, request).await?;
        Ok(Answer::new(pb::AuthUserAddResponse { header: header(answer.header) }))
    }

    async fn user_delete(
        &self,
        call: Call<pb::AuthUserDeleteRequest>,
    ) -> Result<Answer<pb::AuthUserDeleteResponse>, Status> {
        let body = call.get_ref().clone();
        let request = AuthRequest::UserDelete { name: body.name };
        let answer = self.auth(&call, request).await?;
        Ok(Answer::new(pb::AuthUserDeleteResponse { header: header(answer.header) }))
    }

    async fn user_change_password(
        &self,
        call: Call<pb::AuthUserChangePasswordRequest>,
    ) -> Result<Answer<pb::AuthUserChangePasswordResponse>, Status> {
        let body = call.get_ref().clone();
        let request = AuthRequest::UserChangePassword {
            name: body.name,
            password: body.password,
            hashed_password: String::new(),
        };
        let answer = self.auth(&call, request).await?;
        Ok(Answer::new(pb::AuthUserChangePasswordResponse { header: header(answer.header) }))
    }

    async fn user_grant_role(
        &self,
        call: Call<pb::AuthUserGrantRoleRequest>,
    ) -> Result<Answer<pb::AuthUserGrantRoleResponse>, Status> {
        let body = call.get_ref().clone();
        let request = AuthRequest::UserGrantRole { user: body.user, role: body.role };
        let answer = self.auth(&call, request).await?;
        Ok(Answer::new(pb::AuthUserGrantRoleResponse { header: header(answer.header) }))
    }

    async fn user_revoke_role(
        &self,
        call: Call<pb::AuthUserRevokeRoleRequest>,
    ) -> Result<Answer<pb::AuthUserRevokeRoleResponse>, Status> {
        let body = call.get_ref().clone();
        let request = AuthRequest::UserRevokeRole { name: body.name, role: body.role };
        let answer = self.auth(&call, request).await?;
        Ok(Answer::new(pb::AuthUserRevokeRoleResponse { header: header(answer.header) }))
    }

    async fn role_add(
        &self,
        call: Call<pb::AuthRoleAddRequest>,
    ) -> Result<Answer<pb::AuthRoleAddResponse>, Status> {
        let body = call.get_ref().clone();
        let request = AuthRequest::RoleAdd { name: body.name };
        let answer = self.auth(&call, request).await?;
        Ok(Answer::new(pb::AuthRoleAddResponse { header: header(answer.header) }))
    }

    async fn role_delete(
        &self,
        call: Call<pb::AuthRoleDeleteRequest>,
    ) -> Result<Answer<pb::AuthRoleDeleteResponse>, Status> {
        let body = call.get_ref().clone();
        let request = AuthRequest::RoleDelete { role: body.role };
        let answer = self.auth(&call, request).await?;
        Ok(Answer::new(pb::AuthRoleDeleteResponse { header: header(answer.header) }))
    }

    async fn role_revoke_permission(
        &self,
        call: Call<pb::AuthRoleRevokePermissionRequest>,
    ) -> Result<Answer<pb::AuthRoleRevokePermissionResponse>, Status> {
        let body = call.get_ref().clone();
        let request = AuthRequest::RoleRevokePermission {
            role: body.role,
            key: body.key,
            range_end: body.range_end,
        };
        let answer = self.auth(&call, request).await?;
        Ok(Answer::new(pb::AuthRoleRevokePermissionResponse { header: header(answer.header) }))
    }

    async fn authenticate(
        &self,
        call: Call<pb::AuthenticateRequest>,
    ) -> Result<Answer<pb::AuthenticateResponse>, Status> {
        let body = call.get_ref().clone();
        let request = AuthRequest::Authenticate {
            name: body.name,
            password: body.password,
            token: String::new(),
            checked_revision: 0,
        };
        let answer = self.auth(&call, request).await?;
        Ok(Answer::new(pb::AuthenticateResponse {
            header: header(answer.header),
            token: answer.token,
        }))
    }

    async fn user_get(
        &self,
        call: Call<pb::AuthUserGetRequest>,
    ) -> Result<Answer<pb::AuthUserGetResponse>, Status> {
        let request = AuthRequest::UserGet { name: call.get_ref().name.clone() };
        let answer = self.auth(&call, request).await?;
        Ok(Answer::new(pb::AuthUserGetResponse {
            header: header(answer.header),
            roles: answer.roles,
        }))
    }

    async fn user_list(
        &self,
        call: Call<pb::AuthUserListRequest>,
    ) -> Result<Answer<pb::AuthUserListResponse>, Status> {
        let answer = self.auth(&call, AuthRequest::UserList).await?;
        Ok(Answer::new(pb::AuthUserListResponse {
            header: header(answer.header),
            users: answer.users,
        }))
    }

    async fn role_get(
        &self,
        call: Call<pb::AuthRoleGetRequest>,
    ) -> Result<Answer<pb::AuthRoleGetResponse>, Status> {
        let request = AuthRequest::RoleGet { role: call.get_ref().role.clone() };
        let answer = self.auth(&call, request).await?;
        let perm = answer.perms.into_iter().map(permission).collect();
        Ok(Answer::new(pb::AuthRoleGetResponse { header: header(answer.header), perm }))
    }

    async fn role_list(
        &self,
        call: Call<pb::AuthRoleListRequest>,
    ) -> Result<Answer<pb::AuthRoleListResponse>, Status> {
        let answer = self.auth(&call, AuthRequest::RoleList).await?;
        Ok(Answer::new(pb::AuthRoleListResponse {
            header: header(answer.header),
            roles: answer.roles,
        }))
    }

    async fn role_grant_permission(
        &self,
        call: Call<pb::AuthRoleGrantPermissionRequest>,
    ) -> Result<Answer<pb::AuthRoleGrantPermissionResponse>, Status> {
        let body = call.get_ref().clone();
        let perm = body.perm.ok_or_else(|| status(Error::Auth(AuthError::PermissionNotGiven)))?;
        let perm_type = match authpb::permission::Type::try_from(perm.perm_type) {
            Ok(authpb::permission::Type::Read) => PermissionType::Read,
            Ok(authpb::permission::Type::Write) => PermissionType::Write,
            Ok(authpb::permission::Type::Readwrite) => PermissionType::ReadWrite,
            Err(_) => return Err(status(Error::Auth(AuthError::InvalidAuthMgmt))),
        };
        let perm = Permission { perm_type, key: perm.key, range_end: perm.range_end };
        let answer =
            self.auth(&call, AuthRequest::RoleGrantPermission { name: body.name, perm }).await?;
        Ok(Answer::new(pb::AuthRoleGrantPermissionResponse { header: header(answer.header) }))
    }
}
