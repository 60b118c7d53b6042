#!/usr/bin/env bash
# Placeholder until the weights work lands: reports that the model is not available.
echo "fetch-model.sh: not implemented yet" >&2
exit 1
