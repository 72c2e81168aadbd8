#!/usr/bin/env bash
# The browser of `kelm explore`'s browser test (tests/explore/test_browser.py): the system's
# headless Chromium and its chromedriver. `make test` runs this first: when they are missing and
# it runs as root with apt-get (a CI container, a fresh machine), it installs the Debian packages;
# otherwise it says so and the test is skipped with its reason. Never fails the test run.
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "make test: installing chromium and chromium-driver for the browser test"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      chromium chromium-driver >/dev/null; } \
    || echo "make test: could not install chromium; the browser test will be skipped"
else
  echo "make test: no chromium/chromedriver (and no root apt-get): the browser test will be skipped"
fi
exit 0
