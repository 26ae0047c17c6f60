# A WebSocket handshake to $FERROCAST_HOST:$FERROCAST_PORT with busybox nc: the node answers
# 101 Switching Protocols, then its first frame (text, unmasked) carries
# pusher:connection_established. The connection is held for up to 10 s (timeout), grep stops
# at the first match. Also run by tests/helm/check_helm.py against the release binary.
set -u
key="$FERROCAST_APP_KEY"
{
  printf 'GET /app/%s?protocol=7&client=helm-test&version=1 HTTP/1.1\r\n' "$key"
  printf 'Host: %s:%s\r\n' "$FERROCAST_HOST" "$FERROCAST_PORT"
  printf 'Upgrade: websocket\r\nConnection: Upgrade\r\n'
  printf 'Sec-WebSocket-Key: ZmVycm9jYXN0LWhlbG0tdGVzdA==\r\nSec-WebSocket-Version: 13\r\n\r\n'
  sleep 10
} | timeout 10 nc "$FERROCAST_HOST" "$FERROCAST_PORT" | grep -q 'pusher:connection_established'
status=$?
if [ "$status" -eq 0 ]; then
  echo "ok: ws://$FERROCAST_HOST:$FERROCAST_PORT/app/$key answered pusher:connection_established"
else
  echo "FAILED: no pusher:connection_established from ws://$FERROCAST_HOST:$FERROCAST_PORT/app/$key" >&2
fi
exit "$status"
