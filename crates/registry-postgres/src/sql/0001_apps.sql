-- Apps of the `postgres` registry (docs/configuration.md, "[registry]").
-- Columns for what identifies an app and what operators change by hand most (credentials,
-- rotation, enabled); every other AppConfig key (feature switches, limits, allowed_origins) in
-- `limits`, an object whose missing keys take the defaults of [[apps]]; `webhooks` an array of
-- {"url": ..., "events": [...]} like [[apps.webhooks]].
CREATE TABLE ferrocast_apps (
    id text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_.-]+$'),
    key text NOT NULL UNIQUE CHECK (key <> '' AND key !~ '[:/]'),
    secret text NOT NULL CHECK (btrim(secret) <> '' AND secret <> key),
    previous_secret text CHECK (previous_secret IS NULL OR (btrim(previous_secret) <> '' AND previous_secret <> secret)),
    previous_secret_expires_at bigint CHECK (previous_secret_expires_at IS NULL OR previous_secret_expires_at >= 0),
    enabled boolean NOT NULL DEFAULT true,
    limits jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(limits) = 'object'),
    webhooks jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(webhooks) = 'array'),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL))
);

-- Every change, by ferrocast or by hand, tells every listening node which app changed.
CREATE FUNCTION ferrocast_apps_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('ferrocast_apps', '');
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('ferrocast_apps', OLD.id);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('ferrocast_apps', NEW.id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER ferrocast_apps_notify AFTER INSERT OR UPDATE OR DELETE ON ferrocast_apps
    FOR EACH ROW EXECUTE FUNCTION ferrocast_apps_notify();
CREATE TRIGGER ferrocast_apps_notify_truncate AFTER TRUNCATE ON ferrocast_apps
    FOR EACH STATEMENT EXECUTE FUNCTION ferrocast_apps_notify();

-- updated_at follows every change.
CREATE FUNCTION ferrocast_apps_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TRIGGER ferrocast_apps_touch BEFORE UPDATE ON ferrocast_apps
    FOR EACH ROW EXECUTE FUNCTION ferrocast_apps_touch();
