import { chatCases } from './cases.ts';

chatCases('anthropic');
