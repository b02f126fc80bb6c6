module courier.dev/testenv/sync-windows

go 1.26

// robfig/cron at the version ESO v2.9.0's go.mod pins.
require github.com/robfig/cron/v3 v3.0.1
