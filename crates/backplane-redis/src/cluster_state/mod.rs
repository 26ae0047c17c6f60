//! The cluster state on Redis: every change is one Lua script, so concurrent nodes never see
//! (or make) a half-applied update, and every read is one round trip. One file per concern of
//! [`ferrocast_broker::ClusterState`]; this one holds what they share (reply parsing, script
//! invocation).

mod cache;
mod connections;
mod count_updates;
mod leaves;
mod node_records;
mod occupancy;
mod presence;
mod rates;
mod registration;
mod users;

use ferrocast_broker::{BackplaneError, LeavePolicy, LeaveToken};
use redis::Value;

use crate::RedisBackplane;

pub(crate) use cache::encode_cached;
pub(crate) use leaves::standing_leaves;
pub(crate) use node_records::{BucketRun, Invocation};

pub(crate) fn malformed(what: &str) -> BackplaneError {
    BackplaneError::malformed(what)
}

pub(crate) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

pub(crate) fn string(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

pub(crate) fn array(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Array(items) => Some(items),
        Value::Nil => Some(&[]),
        _ => None,
    }
}

/// `{user, info, user, info, ...}` into pairs.
pub(crate) fn pairs(v: &Value) -> Option<Vec<(String, String)>> {
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
pub(crate) fn pending_leave(reply: &Value, what: &str) -> Result<Option<LeaveToken>, BackplaneError> {
    match array(reply).ok_or_else(|| malformed(what))? {
        [_, token] => Ok(Some(LeaveToken(string(token).ok_or_else(|| malformed(what))?))),
        [_] => Ok(None),
        _ => Err(malformed(what)),
    }
}

impl RedisBackplane {
    /// A token naming one pending leave, unique in the cluster (node id, then a counter); empty
    /// when no pending leave is wanted (the scripts then keep none).
    pub(crate) fn leave_token(&self, policy: LeavePolicy) -> String {
        if policy == LeavePolicy::Immediate {
            return String::new();
        }
        let n = self.leave_tokens.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}:{n}", self.keys.node())
    }

    /// Run `script` with `keys` in `KEYS[]` and `args` in `ARGV[]`.
    pub(crate) async fn eval(
        &self,
        script: &redis::Script,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<Value, BackplaneError> {
        self.with_conn(|mut conn| async move {
            let mut invocation = script.prepare_invoke();
            for key in &keys {
                invocation.key(key);
            }
            for arg in &args {
                invocation.arg(arg);
            }
            invocation.invoke_async::<Value>(&mut conn).await
        })
        .await
    }

    /// Run `script` once per `(keys, args)`, concurrently (one bucket each: on a Redis Cluster
    /// they go to their shards in parallel); replies in order.
    pub(crate) async fn eval_many(
        &self,
        script: &redis::Script,
        calls: Vec<(Vec<String>, Vec<String>)>,
    ) -> Result<Vec<Value>, BackplaneError> {
        futures_util::future::try_join_all(calls.into_iter().map(|(keys, args)| self.eval(script, keys, args))).await
    }

    /// Run independent commands in one round trip and return their replies in order: a
    /// pipeline on one Redis; on a Redis Cluster, where a pipeline must stay in one slot, each
    /// on its own over the multiplexed connection (which sends them without waiting).
    pub(crate) async fn query_all(&self, commands: Vec<redis::Cmd>) -> Result<Vec<Value>, BackplaneError> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        self.with_conn(|conn| async move {
            match conn {
                crate::conn::Conn::Cluster(conn) => {
                    futures_util::future::try_join_all(commands.iter().map(|cmd| {
                        let mut conn = conn.clone();
                        async move { cmd.query_async::<Value>(&mut conn).await }
                    }))
                    .await
                }
                mut conn => {
                    let mut pipe = redis::pipe();
                    for cmd in commands {
                        pipe.add_command(cmd);
                    }
                    pipe.query_async(&mut conn).await
                }
            }
        })
        .await
    }

    /// `node, extra...` as script arguments.
    pub(crate) fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut args = vec![self.keys.node().to_owned()];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }
}
