#!/bin/sh
# The memory provider suite inside the guest, where both providers exist:
# kmod (/dev/dsv4) and host (memfd + mbind + mlock), on 2 memory nodes.
exec /bin/dsv4-provider-test
