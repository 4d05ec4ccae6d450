#!/usr/bin/env node
// The `director` command (package.json "bin"): `npx director ...` or `node bin/director.ts ...`.
import { main, processIo } from '../cli/main.ts';

process.exitCode = await main(process.argv, processIo());
