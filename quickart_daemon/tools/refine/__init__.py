"""The line refiner's training data (independent rough families over procedural drawings, our
generator's roughs, clip art for evaluation), its training loop and its evaluation."""
