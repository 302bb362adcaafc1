DROP TRIGGER set_updated_at ON auth.guardian_invitations;
DROP TABLE auth.guardian_invitations;

DROP TRIGGER set_updated_at ON auth.service_clients;
DROP TABLE auth.service_clients;

DROP TABLE auth.signing_keys;

DROP TRIGGER set_updated_at ON auth.invitations;
DROP TABLE auth.invitations;

DROP TABLE auth.password_reset_rate_limits;

DROP TRIGGER set_updated_at ON auth.password_reset_tokens;
DROP TABLE auth.password_reset_tokens;

DROP TRIGGER set_updated_at ON auth.account_permissions;
DROP TABLE auth.account_permissions;

DROP TABLE auth.account_roles;

DROP TABLE auth.role_permissions;

DROP TRIGGER set_updated_at ON auth.permissions;
DROP TABLE auth.permissions;

DROP TRIGGER set_updated_at ON auth.roles;
DROP TABLE auth.roles;

DROP TRIGGER set_updated_at ON auth.tokens;
DROP TABLE auth.tokens;

DROP TRIGGER set_updated_at ON auth.accounts;
DROP TABLE auth.accounts;
