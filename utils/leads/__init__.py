"""CodePro lead scoring (L2AC): the raw schema, synthetic leads, the original cleaning, the model and its read-outs."""
