import { chatCases } from './cases.ts';

chatCases('openai');
