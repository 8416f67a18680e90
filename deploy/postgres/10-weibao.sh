#!/bin/sh
# Runs once, when the PostgreSQL container initialises its data directory: creates
# weibao's own role and database (the event store and the read models) beside the
# `temporal` and `temporal_visibility` databases that Temporal's auto-setup creates.
# The role's name, password and database are read from the weibao.env mounted at
# /run/weibao/weibao.env, so they are written down once.
set -eu
env_file=${WEIBAO_ENV_FILE:-/run/weibao/weibao.env}
get() { sed -n "s/^$1=//p" "$env_file" | tail -n 1; }
db=$(get POSTGRES_DBNAME); user=$(get POSTGRES_USER); password=$(get POSTGRES_PASSWORD)
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
     -v db="${db:-weibao}" -v user="${user:-weibao}" -v password="$password" <<'SQL'
CREATE ROLE :"user" LOGIN PASSWORD :'password';
CREATE DATABASE :"db" OWNER :"user";
SQL
