//! [`ClusterState`] on Redis: every change is one Lua script, so concurrent nodes never see
//! (or make) a half-applied update, and every read is one round trip.

use std::time::Duration;

use async_trait::async_trait;
use ferrocast_broker::backplane::ChannelCounts;
use ferrocast_broker::{
    BackplaneError, ClusterState, LeaveToken, NodeSnapshot, PresenceJoin, PresenceLeave, RateDecision, RateKind,
    ResyncOutcome,
};
use redis::Value;

use crate::RedisBackplane;

fn malformed(what: &str) -> BackplaneError {
    BackplaneError(format!("redis: unexpected reply to {what}"))
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

fn string(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn array(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Array(items) => Some(items),
        Value::Nil => Some(&[]),
        _ => None,
    }
}

/// `{user, info, user, info, ...}` into pairs.
fn pairs(v: &Value) -> Option<Vec<(String, String)>> {
    array(v)?
        .chunks(2)
        .map(|kv| Some((string(kv.first()?)?, string(kv.get(1)?)?)))
        .collect()
}

/// `{{a, c, u, info?}, ...}` into tuples of strings.
pub(crate) fn rows(v: &Value) -> Option<Vec<Vec<String>>> {
    array(v)?
        .iter()
        .map(|row| array(row)?.iter().map(string).collect())
        .collect()
}

/// `{status, token}` of a leave: the token when it left something empty.
fn pending_leave(reply: &Value, what: &str) -> Result<Option<LeaveToken>, BackplaneError> {
    match array(reply).ok_or_else(|| malformed(what))? {
        [_, token] => Ok(Some(LeaveToken(string(token).ok_or_else(|| malformed(what))?))),
        [_] => Ok(None),
        _ => Err(malformed(what)),
    }
}

impl RedisBackplane {
    /// A token naming one pending leave, unique in the cluster (node id, then a counter); empty
    /// when no pending leave is wanted (the scripts then keep none).
    fn leave_token(&self, pending: bool) -> String {
        if !pending {
            return String::new();
        }
        let n = self.leave_tokens.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}:{n}", self.keys.node())
    }

    async fn eval(&self, script: &redis::Script, args: Vec<String>) -> Result<Value, BackplaneError> {
        self.with_conn(|mut conn| async move {
            let mut invocation = script.prepare_invoke();
            for arg in &args {
                invocation.arg(arg);
            }
            invocation.invoke_async::<Value>(&mut conn).await
        })
        .await
    }

    /// `prefix, node, extra...` as script arguments.
    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut args = vec![self.keys.prefix().to_owned(), self.keys.node().to_owned()];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }
}

#[async_trait]
impl ClusterState for RedisBackplane {
    async fn connection_opened(&self, app_id: &str, max: u64) -> Result<bool, BackplaneError> {
        let reply = self
            .eval(&self.scripts.connect, self.args(&[app_id, &max.to_string()]))
            .await?;
        Ok(int(&reply).ok_or_else(|| malformed("connect"))? == 1)
    }

    async fn connection_closed(&self, app_id: &str) -> Result<(), BackplaneError> {
        self.eval(&self.scripts.disconnect, self.args(&[app_id]))
            .await
            .map(|_| ())
    }

    async fn subscription_added(&self, app_id: &str, channel: &str) -> Result<bool, BackplaneError> {
        let reply = self.eval(&self.scripts.sub_add, self.args(&[app_id, channel])).await?;
        match array(&reply).ok_or_else(|| malformed("subscription add"))? {
            [_count, occupied] => Ok(int(occupied) == Some(1)),
            _ => Err(malformed("subscription add")),
        }
    }

    async fn subscription_removed(
        &self,
        app_id: &str,
        channel: &str,
        pending: bool,
    ) -> Result<Option<LeaveToken>, BackplaneError> {
        let token = self.leave_token(pending);
        let reply = self
            .eval(&self.scripts.sub_remove, self.args(&[app_id, channel, &token]))
            .await?;
        pending_leave(&reply, "subscription remove")
    }

    async fn presence_join(
        &self,
        app_id: &str,
        channel: &str,
        _socket_id: &str,
        user_id: &str,
        user_info: &str,
        max_members: u64,
    ) -> Result<PresenceJoin, BackplaneError> {
        let args = self.args(&[app_id, channel, user_id, user_info, &max_members.to_string()]);
        let reply = self.eval(&self.scripts.presence_join, args).await?;
        let items = array(&reply).ok_or_else(|| malformed("presence join"))?;
        match items {
            [status] if int(status) == Some(0) => Ok(PresenceJoin::Full),
            [status, added, roster, returned] if int(status) == Some(1) => Ok(PresenceJoin::Joined {
                added: int(added) == Some(1),
                roster: pairs(roster).ok_or_else(|| malformed("presence join"))?,
                returned: int(returned) == Some(1),
            }),
            _ => Err(malformed("presence join")),
        }
    }

    async fn presence_leave(
        &self,
        app_id: &str,
        channel: &str,
        _socket_id: &str,
        user_id: &str,
        pending: bool,
    ) -> Result<PresenceLeave, BackplaneError> {
        let token = self.leave_token(pending);
        let reply = self
            .eval(
                &self.scripts.presence_leave,
                self.args(&[app_id, channel, user_id, &token]),
            )
            .await?;
        match array(&reply).ok_or_else(|| malformed("presence leave"))? {
            [left, ..] if int(left) == Some(1) => Ok(PresenceLeave::Left(pending_leave(&reply, "presence leave")?)),
            _ => Ok(PresenceLeave::Stayed),
        }
    }

    async fn confirm_leave(
        &self,
        app_id: &str,
        channel: &str,
        user_id: Option<&str>,
        token: &LeaveToken,
    ) -> Result<bool, BackplaneError> {
        let mut args = vec![
            self.keys.prefix().to_owned(),
            app_id.to_owned(),
            channel.to_owned(),
            token.0.clone(),
        ];
        args.extend(user_id.map(str::to_owned));
        let reply = self.eval(&self.scripts.confirm_leave, args).await?;
        Ok(int(&reply).ok_or_else(|| malformed("confirm leave"))? == 1)
    }

    async fn presence_members(&self, app_id: &str, channel: &str) -> Result<Vec<(String, String)>, BackplaneError> {
        let key = format!("{}:pm:{}:{}", self.keys.prefix(), app_id, channel);
        let reply = self
            .with_conn(|mut conn| async move { redis::cmd("HGETALL").arg(key).query_async::<Value>(&mut conn).await })
            .await?;
        let mut members = match &reply {
            Value::Map(map) => map.iter().filter_map(|(k, v)| Some((string(k)?, string(v)?))).collect(),
            other => pairs(other).ok_or_else(|| malformed("presence members"))?,
        };
        members.sort();
        Ok(members)
    }

    async fn channels(&self, app_id: &str, prefix: &str) -> Result<Vec<(String, ChannelCounts)>, BackplaneError> {
        let args = vec![self.keys.prefix().to_owned(), app_id.to_owned(), prefix.to_owned()];
        let reply = self.eval(&self.scripts.channels, args).await?;
        let items = array(&reply).ok_or_else(|| malformed("channels"))?;
        let mut out = items
            .chunks(3)
            .map(|row| match row {
                [name, subs, users] => Some((
                    string(name)?,
                    ChannelCounts {
                        subscriptions: int(subs)?.max(0) as u64,
                        users: int(users)?.max(0) as u64,
                    },
                )),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| malformed("channels"))?;
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    async fn channel(&self, app_id: &str, channel: &str) -> Result<ChannelCounts, BackplaneError> {
        let args = vec![self.keys.prefix().to_owned(), app_id.to_owned(), channel.to_owned()];
        let reply = self.eval(&self.scripts.channel, args).await?;
        match array(&reply).ok_or_else(|| malformed("channel"))? {
            [subs, users] => Ok(ChannelCounts {
                subscriptions: int(subs).ok_or_else(|| malformed("channel"))?.max(0) as u64,
                users: int(users).ok_or_else(|| malformed("channel"))?.max(0) as u64,
            }),
            _ => Err(malformed("channel")),
        }
    }

    async fn take_rate(
        &self,
        app_id: &str,
        kind: RateKind,
        units: u64,
        per_second: u64,
    ) -> Result<RateDecision, BackplaneError> {
        // One round trip of `lua/rate.lua`.
        let key = self.keys.rate(app_id, kind.label());
        let script = &self.scripts.rate;
        let reply = self
            .with_conn(|mut conn| async move {
                script
                    .key(key)
                    .arg(units)
                    .arg(per_second)
                    .invoke_async::<Value>(&mut conn)
                    .await
            })
            .await?;
        match array(&reply).ok_or_else(|| malformed("rate"))? {
            [allowed, resets_ms] => {
                let resets_ms = int(resets_ms).ok_or_else(|| malformed("rate"))?;
                Ok(RateDecision {
                    allowed: int(allowed) == Some(1),
                    resets_in: Duration::from_millis(resets_ms.clamp(0, 1000) as u64),
                })
            }
            _ => Err(malformed("rate")),
        }
    }

    async fn resync(&self, snapshot: &NodeSnapshot) -> Result<ResyncOutcome, BackplaneError> {
        let ttl_ms = self.options.node_ttl.as_millis().to_string();
        let known = self.epoch.lock().map(|e| e.clone()).unwrap_or_default();
        let proposal = format!("{}-{:016x}", self.keys.node(), crate::pubsub::rand_nonce());
        let mut args = self.args(&[&ttl_ms, &known, &proposal]);
        args.push(snapshot.connections.len().to_string());
        for (app, count) in &snapshot.connections {
            args.extend([app.clone(), count.to_string()]);
        }
        args.push(snapshot.subscriptions.len().to_string());
        for (app, channel, count) in &snapshot.subscriptions {
            args.extend([app.clone(), channel.clone(), count.to_string()]);
        }
        args.push(snapshot.presence.len().to_string());
        for (app, channel, user, info, count) in &snapshot.presence {
            args.extend([
                app.clone(),
                channel.clone(),
                user.clone(),
                info.clone(),
                count.to_string(),
            ]);
        }
        let reply = self.eval(&self.scripts.resync, args).await?;
        let parts = array(&reply).ok_or_else(|| malformed("resync"))?;
        let (Some(added), Some(removed), Some(epoch), Some(reset)) = (
            parts.first().and_then(rows),
            parts.get(1).and_then(rows),
            parts.get(2).and_then(string),
            parts.get(3).and_then(int),
        ) else {
            return Err(malformed("resync"));
        };
        if let Ok(mut known) = self.epoch.lock() {
            *known = epoch;
        }
        Ok(ResyncOutcome {
            store_was_reset: reset == 1,
            added: added
                .into_iter()
                .filter_map(|r| match <[String; 4]>::try_from(r) {
                    Ok([a, c, u, i]) => Some((a, c, u, i)),
                    Err(_) => None,
                })
                .collect(),
            removed: removed
                .into_iter()
                .filter_map(|r| match <[String; 3]>::try_from(r) {
                    Ok([a, c, u]) => Some((a, c, u)),
                    Err(_) => None,
                })
                .collect(),
        })
    }
}
