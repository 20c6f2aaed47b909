#!/usr/bin/env bash
# `make demo`: a local mosquitto, central with the Asker demo data, the API on http://127.0.0.1:8000.
# Everything lives in var/demo/ and listens on 127.0.0.1 only. Ctrl-C stops both.
#
#   MERAAPENT_MQTT_PORT        broker port (default 1883); central is told the same port
#   MERAAPENT_DEMO_HTTP_PORT   API port (default 8000)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

MQTT_PORT=${MERAAPENT_MQTT_PORT:-1883}
HTTP_PORT=${MERAAPENT_DEMO_HTTP_PORT:-8000}
DATA_DIR=$ROOT/var/demo
BROKER_DIR=$DATA_DIR/mosquitto
MERAAPENT=$ROOT/.venv/bin/meraapent

# The demo must never touch a real installation configured in this shell's environment.
unset MERAAPENT_DB_URL MERAAPENT_MQTT_USERNAME MERAAPENT_MQTT_PASSWORD
export MERAAPENT_DATA_DIR=$DATA_DIR MERAAPENT_MQTT_HOST=127.0.0.1 MERAAPENT_MQTT_PORT=$MQTT_PORT

die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

check_port() {  # what, port, variable that changes it, hint
    [[ $2 =~ ^[0-9]+$ ]] && (($2 > 0 && $2 < 65536)) || die "$3 must be a port number 1–65535, got '$2'"
    if listening "$2"; then
        die "port $2 on 127.0.0.1 is already in use, so the $1 cannot start.
      Stop what listens there (ss -ltnp 'sport = :$2' shows it${4:+; $4})
      or pick another port: $3=<port> make demo"
    fi
}

mosquitto_binary() {
    command -v mosquitto || command -v /usr/sbin/mosquitto || die "mosquitto not found; run: bash scripts/bootstrap.sh"
}

BROKER_PID=
stop_broker() {
    if [[ -n $BROKER_PID ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -TERM "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
        echo "demo: mosquitto stopped"
    fi
}

start_broker() {
    local binary config=$BROKER_DIR/mosquitto.conf
    binary=$(mosquitto_binary)
    mkdir -p "$BROKER_DIR"
    sed -e "s|@PORT@|$MQTT_PORT|g" -e "s|@DATA_DIR@|$BROKER_DIR|g" -e "s|@USER@|$(id -un)|g" \
        deploy/mosquitto/demo.conf >"$config"
    "$binary" -c "$config" </dev/null >/dev/null 2>>"$BROKER_DIR/mosquitto.stderr" &
    BROKER_PID=$!
    local tries
    for tries in $(seq 100); do
        listening "$MQTT_PORT" && return 0
        kill -0 "$BROKER_PID" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 5 "$BROKER_DIR/mosquitto.stderr" "$BROKER_DIR/mosquitto.log" >&2 2>/dev/null || true
    die "mosquitto did not start on 127.0.0.1:$MQTT_PORT (after $tries tries; log above)"
}

has_signing_key() {  # central/keystore.py: keys/ACTIVE names the active signing key
    [[ -s $DATA_DIR/keys/ACTIVE ]]
}

check_port "MQTT broker" "$MQTT_PORT" MERAAPENT_MQTT_PORT "a system broker stops with: systemctl stop mosquitto"
check_port "API server" "$HTTP_PORT" MERAAPENT_DEMO_HTTP_PORT
[[ -x $MERAAPENT ]] || die "$MERAAPENT is missing; run: bash scripts/bootstrap.sh"

trap stop_broker EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_broker
echo "demo: mosquitto listening on 127.0.0.1:$MQTT_PORT (log: var/demo/mosquitto/mosquitto.log)"
"$MERAAPENT" central migrate
has_signing_key || "$MERAAPENT" keys generate
"$MERAAPENT" central seed

cat <<EOF

  Meråpent demo is starting (data in var/demo/; Ctrl-C stops it)

  API docs        http://127.0.0.1:$HTTP_PORT/docs
  Admin token     var/demo/admin-token  ("Authorize" in the API docs, or
                  curl -H "Authorization: Bearer \$(cat var/demo/admin-token)" http://127.0.0.1:$HTTP_PORT/...)
  Watch MQTT      mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -v -t 'meraapent/v1/#'
  Start afresh    make clean && make demo

EOF
"$MERAAPENT" central serve --host 127.0.0.1 --port "$HTTP_PORT"
