#!/usr/bin/env node
"use strict";
// The CLI is TypeScript run through tsx, so `npx nixmox` needs no build step.
require("tsx/cjs");
require("../cli/main.ts");
