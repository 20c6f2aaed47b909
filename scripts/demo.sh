#!/usr/bin/env bash
# `make demo`: a local mosquitto, central with the Asker demo data (API on http://127.0.0.1:8000, its log in
# var/demo/central.log) and, in the foreground, a simulated Heggedal to play with (`meraapent sim site`).
# Everything lives in var/demo/ and listens on 127.0.0.1 only. `quit` or Ctrl-C stops everything.
# With stdin not a terminal the simulator reads its commands from it: `make demo < commands.txt`.
#
#   MERAAPENT_MQTT_PORT        broker port (default 1883); central is told the same port
#   MERAAPENT_DEMO_HTTP_PORT   API and phone page port (default 8000)
#   MERAAPENT_DEMO_KIOSK_PORT  the torg's touchscreen kiosk in a browser, beside the simulated site (8001)
#   MERAAPENT_DEMO_OIDC_PORT   the local OpenID Connect provider residents sign in with (default 4100), a
#                              stand-in for ID-porten (tests/js/oidc_provider.mjs, the npm oidc-provider)
#   MERAAPENT_DEMO_AT          the simulated site's time: open (default: now if Heggedal is open now, else
#                              its next evening at 19:00), now, or a site time such as 2030-06-03T19:00
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

MQTT_PORT=${MERAAPENT_MQTT_PORT:-1883}
HTTP_PORT=${MERAAPENT_DEMO_HTTP_PORT:-8000}
OIDC_PORT=${MERAAPENT_DEMO_OIDC_PORT:-4100}
KIOSK_PORT=${MERAAPENT_DEMO_KIOSK_PORT:-8001}
DEMO_AT=${MERAAPENT_DEMO_AT:-open}
SITE=heggedal
DATA_DIR=$ROOT/var/demo
BROKER_DIR=$DATA_DIR/mosquitto
MERAAPENT=$ROOT/.venv/bin/meraapent

# The demo must never touch a real installation configured in this shell's environment.
unset MERAAPENT_DB_URL MERAAPENT_MQTT_USERNAME MERAAPENT_MQTT_PASSWORD PCSCLITE_CSOCK_NAME
export MERAAPENT_DATA_DIR=$DATA_DIR MERAAPENT_MQTT_HOST=127.0.0.1 MERAAPENT_MQTT_PORT=$MQTT_PORT
export MERAAPENT_PUBLIC_URL=http://127.0.0.1:$HTTP_PORT

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

stop_pid() {  # pid, name
    if [[ -n $1 ]] && kill -0 "$1" 2>/dev/null; then
        kill -TERM "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
        echo "demo: $2 stopped"
    fi
}

BROKER_PID=
CENTRAL_PID=
OIDC_PID=
stop_all() {
    stop_pid "$CENTRAL_PID" central
    stop_pid "$OIDC_PID" "OpenID Connect provider"
    stop_pid "$BROKER_PID" mosquitto
}

# Residents sign in on the phone page with OpenID Connect; here a local provider stands in for ID-porten.
# Without Node.js (or its packages) the demo runs without it and the phone page says sign-in is not set up.
start_oidc() {
    local script=tests/js/oidc_provider.mjs
    if ! command -v node >/dev/null || [[ ! -d tests/js/node_modules/oidc-provider ]]; then
        echo "demo: no Node.js or tests/js/node_modules: the phone page runs without sign-in (bash scripts/bootstrap.sh)"
        return 0
    fi
    local secret
    secret=$("$ROOT/.venv/bin/python" -c 'import secrets; print(secrets.token_urlsafe(24))')
    node "$script" --port "$OIDC_PORT" --client-id meraapent --client-secret "$secret" \
        --redirect-uri "$MERAAPENT_PUBLIC_URL/min-nokkel/innlogget" </dev/null >"$DATA_DIR/oidc.log" 2>&1 &
    OIDC_PID=$!
    local tries
    for tries in $(seq 100); do
        if listening "$OIDC_PORT"; then
            export MERAAPENT_OIDC_ISSUER=http://127.0.0.1:$OIDC_PORT MERAAPENT_OIDC_CLIENT_ID=meraapent
            export MERAAPENT_OIDC_CLIENT_SECRET=$secret
            echo "demo: OpenID Connect provider on http://127.0.0.1:$OIDC_PORT (log: var/demo/oidc.log)"
            return 0
        fi
        kill -0 "$OIDC_PID" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 5 "$DATA_DIR/oidc.log" >&2 || true
    die "the OpenID Connect provider did not start on 127.0.0.1:$OIDC_PORT (log above)"
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

start_central() {  # in the background, its log in a file: the terminal belongs to the simulated site
    "$MERAAPENT" central serve --host 127.0.0.1 --port "$HTTP_PORT" </dev/null >"$DATA_DIR/central.log" 2>&1 &
    CENTRAL_PID=$!
    local tries
    for tries in $(seq 300); do
        listening "$HTTP_PORT" && return 0
        kill -0 "$CENTRAL_PID" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 15 "$DATA_DIR/central.log" >&2 || true
    die "central did not start on 127.0.0.1:$HTTP_PORT (after $tries tries; log above, all of it in var/demo/central.log)"
}

# The caretakers' console (/drift) signs in the seeded admin with a password made once for this demo.
set_console_password() {
    local file=$DATA_DIR/console-password
    if [[ ! -s $file ]]; then
        (umask 077 && "$ROOT/.venv/bin/python" -c 'import secrets; print(secrets.token_urlsafe(12))' >"$file")
    fi
    "$MERAAPENT" central staff-password admin <"$file" >/dev/null
}

has_signing_key() {  # central/keystore.py: keys/ACTIVE names the active signing key
    [[ -s $DATA_DIR/keys/ACTIVE ]]
}

# The simulated card readers run on a private pcscd, which must be able to create /run/pcscd.
can_simulate() {
    [[ $(id -u) -eq 0 || -w /run/pcscd ]]
}

check_port "MQTT broker" "$MQTT_PORT" MERAAPENT_MQTT_PORT "a system broker stops with: systemctl stop mosquitto"
check_port "API server" "$HTTP_PORT" MERAAPENT_DEMO_HTTP_PORT
check_port "OpenID Connect provider" "$OIDC_PORT" MERAAPENT_DEMO_OIDC_PORT
check_port "kiosk" "$KIOSK_PORT" MERAAPENT_DEMO_KIOSK_PORT
[[ -x $MERAAPENT ]] || die "$MERAAPENT is missing; run: bash scripts/bootstrap.sh"

trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_broker
echo "demo: mosquitto listening on 127.0.0.1:$MQTT_PORT (log: var/demo/mosquitto/mosquitto.log)"
"$MERAAPENT" central migrate
has_signing_key || "$MERAAPENT" keys generate
"$MERAAPENT" central seed
mkdir -p "$DATA_DIR"
set_console_password
start_oidc
start_central
echo "demo: central listening on http://127.0.0.1:$HTTP_PORT (log: var/demo/central.log)"

cat <<EOF

  Meråpent demo (data in var/demo/)

  API docs        http://127.0.0.1:$HTTP_PORT/docs
  Phone page      http://127.0.0.1:$HTTP_PORT/min-nokkel/  ("Min nøkkel": sign up as voksen, any password;
                  ungdom is 16 and needs a guardian's consent, barn is 13 and is turned away)
  Console         http://127.0.0.1:$HTTP_PORT/drift/  (caretakers: every door and alarm live, remote
                  unlock, event log, administration, statistics; user admin, password in
                  var/demo/console-password)
  Admin token     var/demo/admin-token  ("Authorize" in the API docs, or
                  curl -H "Authorization: Bearer \$(cat var/demo/admin-token)" http://127.0.0.1:$HTTP_PORT/...)
  Watch MQTT      mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -v -t 'meraapent/v1/#'
  Start afresh    make clean && make demo
EOF

if ! can_simulate; then
    cat <<EOF

  The simulated $SITE needs root: its virtual card readers run on a private pcscd, which must create
  /run/pcscd. Run \`sudo make demo\` to play it. Central and mosquitto keep running; Ctrl-C stops them.

EOF
    wait "$CENTRAL_PID"
    exit 0
fi

cat <<EOF

  Below, a simulated Heggedal innbyggertorg: its real site agent on virtual doors, card readers and keypads,
  talking to central over MQTT. Play a resident's evening:

      tap hovedinngang kari      Kari Nordmann's library card on the main entrance's reader
      pin hovedinngang 1234      her PIN (every demo PIN is 1234)
      push hovedinngang          the door opens while the lock is released
      keys hovedinngang *CODE#   then  tap hovedinngang 04C0FFEE42: registers a new library card with
                                 the one-time code the phone page shows after you sign up
      book kari moterom-1        central books Møterom 1 for Kari from 5 minutes from now, then
      kiosk kari                 she holds her card to the kiosk to check in; the kiosk
                                 itself is at http://127.0.0.1:$KIOSK_PORT (touch or keyboard)
      status                     doors, relays and the latest events;  central: what central stored
      help                       every command (exit buttons, forcing a door, the fire alarm, ...);  quit

EOF
"$MERAAPENT" sim site --site "$SITE" --api "http://127.0.0.1:$HTTP_PORT" --at "$DEMO_AT" \
    --kiosk-port "$KIOSK_PORT"
