#!/bin/sh
# Not run at image time (hooks are for running systems).
echo ran >/etc/ztest-image-bundle-hook
